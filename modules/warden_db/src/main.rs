fn main() {
    warden_runtime::run::<warden_db::WardenDb>()
}
