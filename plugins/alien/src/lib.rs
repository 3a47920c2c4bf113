//! Not a wfhost plugin: a component of another world, used to check that
//! the host refuses it at load time, naming the interface it lacks.

wit_bindgen::generate!({ world: "alien", path: "wit" });

struct Alien;

impl exports::acme::alien::greeter::Guest for Alien {
    fn greet(name: String) -> String {
        format!(
            "hello {name}, the secret is {}",
            acme::alien::secrets::read_secret("key")
        )
    }
}

export!(Alien);
