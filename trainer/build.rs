//! Links Open MPI's C library when the `mpi` feature is on; does nothing otherwise.
//!
//! The flags come from `pkg-config --libs ompi-c`, or from `mpicc --showme:link` when pkg-config
//! does not know Open MPI. Without either, the build stops with a message saying what to install.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    if std::env::var_os("CARGO_FEATURE_MPI").is_none() {
        return;
    }
    let sources: [(&str, &[&str]); 2] =
        [("pkg-config", &["--libs", "ompi-c"]), ("mpicc", &["--showme:link"])];
    let mut attempts = Vec::new();
    for (program, args) in sources {
        match link_flags(program, args) {
            Ok(flags) => {
                emit(&flags);
                return;
            }
            Err(reason) => attempts.push(format!("`{program} {}`: {reason}", args.join(" "))),
        }
    }
    panic!(
        "feature `mpi` needs Open MPI's C library, which was not found ({}); install it with \
         `apt-get install libopenmpi-dev openmpi-bin` or build without `--features mpi`",
        attempts.join("; ")
    );
}

/// Runs `program` and returns its whitespace-separated output, or why it gave none.
fn link_flags(program: &str, args: &[&str]) -> Result<Vec<String>, String> {
    let output = Command::new(program).args(args).output().map_err(|error| error.to_string())?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{}: {}", output.status, stderr.trim()));
    }
    let flags: Vec<String> =
        String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_string).collect();
    if flags.iter().any(|flag| flag.starts_with("-l")) {
        Ok(flags)
    } else {
        Err(format!("no -l flag in {flags:?}"))
    }
}

/// Passes library names and search paths to rustc, and linker options (`-Wl,...`) to the linker.
fn emit(flags: &[String]) {
    for flag in flags {
        if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        } else if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if flag.starts_with("-Wl,") || flag == "-pthread" {
            println!("cargo:rustc-link-arg={flag}");
        }
    }
}
