fn main() {
    warden_runtime::run::<warden_env::WardenEnv>()
}
