//! `tandem-init`: the program every tandem job runs under. Started by the worker with its
//! protocol descriptors; not meant to be run by hand.

fn main() {
    tandem_worker::init::main()
}
