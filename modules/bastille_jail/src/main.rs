fn main() {
    warden_runtime::run::<bastille_jail::BastilleJail>()
}
