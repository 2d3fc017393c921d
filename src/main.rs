fn main() {
    println!("alloy-runner");
}
