fn main() {
    warden_runtime::run::<warden_bridge_alias::WardenBridgeAlias>()
}
