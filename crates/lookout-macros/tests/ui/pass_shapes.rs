use std::fmt::Display;

#[lookout::measured]
fn unit() {}

#[lookout::measured]
fn borrowed(s: &str) -> &str {
    &s[1..]
}

#[lookout::measured]
fn opaque(x: u32) -> impl Display {
    x
}

#[lookout::measured]
fn early(x: u32) -> Result<u32, std::io::Error> {
    if x == 0 {
        return Ok(0);
    }
    let n: u32 = "7".parse().map_err(std::io::Error::other)?;
    Ok(n + x)
}

#[lookout::measured]
async fn question(x: &str) -> Result<u32, Box<dyn std::error::Error>> {
    Ok(x.parse::<u32>()?)
}

#[lookout::measured]
fn generic<T: Display>(t: T) -> String {
    t.to_string()
}

mod reexported {
    pub use lookout as obs;
}

#[lookout::measured(crate = reexported::obs)]
fn via_reexport() -> u8 {
    1
}

fn main() {
    unit();
    let _ = borrowed("ab");
    let _ = opaque(1).to_string();
    let _ = early(1);
    let _ = question("1");
    let _ = generic(1);
    let _ = via_reexport();
}
