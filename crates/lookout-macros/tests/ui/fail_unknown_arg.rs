#[lookout::measured(label = "x")]
fn f() {}

fn main() {
    f();
}
