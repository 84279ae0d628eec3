//! The README shows scripts users copy: they must be the ones the tests run.

use std::path::Path;

fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)).unwrap()
}

/// `tools/cluster/slurm_e2e.sh` submits this script to a real Slurm cluster in CI; the README
/// must show exactly it.
#[test]
fn the_readme_shows_the_slurm_script_that_ci_runs() {
    let script = repo_file("tools/cluster/extract_array.sbatch");
    let readme = repo_file("README.md");
    assert!(readme.contains(&format!("```bash\n{script}```")), "README.md does not show tools/cluster/extract_array.sbatch as it is");
    assert!(repo_file("tools/cluster/slurm_e2e.sh").contains("extract_array.sbatch"));
}
