//! The `kql` command: runs a KQL query over tables loaded from JSON files and prints the result
//! as a Log Analytics query response.

fn main() {
    eprintln!("kql: not built yet");
    std::process::exit(2);
}
