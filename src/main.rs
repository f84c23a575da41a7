fn main() {
    std::process::exit(mtlscope::app::main());
}
