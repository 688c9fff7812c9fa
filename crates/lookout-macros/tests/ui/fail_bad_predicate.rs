fn takes_string(_: &String) -> bool {
    true
}

#[lookout::measured(ok_if = takes_string)]
fn f() -> Result<u32, ()> {
    Ok(1)
}

fn main() {
    let _ = f();
}
