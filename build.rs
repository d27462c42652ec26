// Builds the small C shims over the system's libjpeg-turbo (Debian: libjpeg62-turbo-dev) and
// libheif (Debian: libheif-dev); scripts/setup.sh installs both.
fn main() {
    println!("cargo:rerun-if-changed=src/media/jpeg/shim.c");
    println!("cargo:rerun-if-changed=src/media/heif/shim.c");
    cc::Build::new().file("src/media/jpeg/shim.c").opt_level(2).warnings(true).compile("blurgate_jpeg");
    cc::Build::new().file("src/media/heif/shim.c").opt_level(2).warnings(true).compile("blurgate_heif");
    println!("cargo:rustc-link-lib=jpeg");
    println!("cargo:rustc-link-lib=heif");
}
