#[lookout::measured]
struct S;

fn main() {}
