fn main() {
    warden_runtime::run::<warden_rcd::WardenRcd>()
}
