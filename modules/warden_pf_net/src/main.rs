fn main() {
    warden_runtime::run::<warden_pf_net::WardenPfNet>()
}
