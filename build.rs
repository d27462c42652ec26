// Builds the small C shim over the system's libjpeg-turbo (Debian: libjpeg62-turbo-dev).
fn main() {
    println!("cargo:rerun-if-changed=src/media/jpeg/shim.c");
    cc::Build::new().file("src/media/jpeg/shim.c").opt_level(2).warnings(true).compile("blurgate_jpeg");
    println!("cargo:rustc-link-lib=jpeg");
}
