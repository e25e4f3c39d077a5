fn main() {
    warden_runtime::run::<warden_vm::WardenVm>()
}
