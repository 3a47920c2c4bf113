//! The examples of `examples/`, end to end: each is run as its README says,
//! with its own local services, and its pipeline is put through a crash.

mod common;

use std::time::{Duration, Instant};

use common::{LocalService, chain_file, plugin_dir, repo_root};
use serde_json::{Value, json};

fn order_services(args: &[&str]) -> LocalService {
    LocalService::start(&repo_root().join("examples/order/services.py"), args)
}

/// The order example's chain file for `order`, against services on `port`.
fn order_chain(order: &Value, port: u16) -> Value {
    let mut chain = common::example_chain("order", port);
    chain["id"] = json!(format!("order-{}", order["id"].as_str().unwrap()));
    chain["workflow"][0]["args"] = json!([order]);
    chain
}

/// Runs `examples/NAME/run.py args…` with the binary and plugins under
/// test, as its README says; its stdout.
fn run_example(name: &str, args: &[&str]) -> String {
    let run = std::process::Command::new("python3")
        .arg(repo_root().join(format!("examples/{name}/run.py")))
        .args(args)
        .env("WFHOST", env!("CARGO_BIN_EXE_wfhost"))
        .env("WFHOST_PLUGIN_DIR", plugin_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

#[test]
fn the_order_example_fulfills_one_order_and_refunds_the_other() {
    if !common::python3_runs("the_order_example_fulfills_one_order_and_refunds_the_other") {
        return;
    }
    let stdout = run_example("order", &[]);
    assert!(stdout.contains("order 1001: fulfilled"), "{stdout}");
    assert!(
        stdout.contains("order 1002: failed") && stdout.contains("out of stock: gizmo"),
        "{stdout}"
    );
    let charges = stdout
        .lines()
        .find_map(|line| line.strip_prefix("charges: "))
        .unwrap();
    let charges: Vec<Value> = serde_json::from_str(charges).unwrap();
    assert_eq!(charges.len(), 2, "{charges:?}");
    assert_eq!(charges[0]["refunded"], false);
    assert_eq!(
        charges[1]["refunded"], true,
        "the failed order's charge is refunded"
    );
}

fn state(services: &LocalService) -> Value {
    serde_json::from_str(&services.get("/state")).unwrap()
}

/// `kill -9` at a random instant of the charge step, 20 times, then
/// `resume`: the payment service holds exactly one charge per order (it
/// deduplicates by the idempotency key) and every order ends fulfilled.
#[test]
fn orders_killed_during_their_charge_are_charged_once_after_resume() {
    if !common::python3_runs("orders_killed_during_their_charge_are_charged_once_after_resume") {
        return;
    }
    // The charge is taken at once but answered after 150 ms: a kill in that
    // window leaves the step running with its effect already made.
    let services = order_services(&["--charge-delay-ms", "150"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.redb");
    const ORDERS: usize = 20;
    for n in 0..ORDERS {
        let order = json!({
            "id": format!("k{n}"), "customer": "crash@example.com", "cents": 100 + n,
            "items": [{"sku": "widget", "quantity": 1}]
        });
        let chain = chain_file(&order_chain(&order, services.port));
        let requests_before = state(&services)["charge_requests"].as_u64().unwrap();
        let mut command = common::wfhost();
        command.arg("run").arg("--db").arg(&db).arg(&chain.path);
        let mut run = common::spawn(command);
        let deadline = Instant::now() + Duration::from_secs(30);
        while state(&services)["charge_requests"].as_u64().unwrap() == requests_before {
            assert!(
                Instant::now() < deadline,
                "order k{n}: the charge never came"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..200)));
        common::kill(&mut run);
        // Killed before its end, it is resumed; killed after, there is
        // nothing left to resume.
        common::run_args(&[
            "resume",
            "--db",
            db.to_str().unwrap(),
            &format!("order-k{n}"),
        ]);
        let status = common::run_args(&[
            "status",
            "--db",
            db.to_str().unwrap(),
            &format!("order-k{n}"),
            "--json",
        ])
        .json();
        assert_eq!(status["status"], "succeeded", "order k{n}: {status}");
        assert_eq!(status["result"]["status"], "fulfilled");
    }
    let state = state(&services);
    let charges = state["charges"].as_array().unwrap();
    for n in 0..ORDERS {
        let of_order: Vec<&Value> = charges
            .iter()
            .filter(|charge| charge["order_id"] == format!("k{n}"))
            .collect();
        assert_eq!(of_order.len(), 1, "order k{n}: {of_order:?}");
        assert_eq!(of_order[0]["key"], format!("order-k{n}/1"));
        assert_eq!(of_order[0]["refunded"], false);
    }
    // Most kills land while the charge is answered, and resume sends it
    // again: the service saw more charge requests than it took charges.
    assert!(
        state["charge_requests"].as_u64().unwrap() > ORDERS as u64,
        "no kill landed during a charge: {state}"
    );
    assert_eq!(state["reservations"].as_object().unwrap().len(), ORDERS);
    assert_eq!(state["stock"]["widget"], 100 - ORDERS as u64);
}

/// The media example: every image is downloaded, resized in the guest and
/// uploaded, and the chord's totals count them.
#[test]
fn the_media_example_makes_and_uploads_a_thumbnail_of_every_image() {
    if !common::python3_runs("the_media_example_makes_and_uploads_a_thumbnail_of_every_image") {
        return;
    }
    let stdout = run_example("media", &["--images", "8", "--concurrency", "2"]);
    let line = |prefix: &str| -> Value {
        let text = stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {stdout}"));
        serde_json::from_str(text).unwrap()
    };
    let totals = line("totals: ");
    assert_eq!(totals["images"], 8, "{totals}");
    let thumbs = line("thumbs: ");
    let thumbs = thumbs.as_array().unwrap();
    assert_eq!(thumbs.len(), 8, "{thumbs:?}");
    // The service's images (examples/media/images.py), in order, and the
    // thumbnails the guest must have made of them: 128 a side at most,
    // aspect kept.
    let expected = [
        (128, 96),
        (96, 128),
        (128, 96),
        (96, 128),
        (128, 96),
        (128, 128),
        (128, 72),
        (128, 85),
    ];
    for (thumb, (width, height)) in thumbs.iter().zip(expected) {
        assert_eq!(
            (
                thumb["width"].as_u64().unwrap(),
                thumb["height"].as_u64().unwrap()
            ),
            (width, height),
            "{thumb}"
        );
    }
    let uploaded: u64 = thumbs.iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
    assert_eq!(totals["bytes_out"], uploaded);
}

/// The Python example: a Celery tasks module built by `wfhost build-py`,
/// whose canvas mixes in a Rust task, runs as the README says and gives
/// what Celery itself gives for the same module (its import line put back)
/// and the same workflow.
#[test]
fn the_python_example_runs_with_rust_tasks_and_agrees_with_celery() {
    let Some(tasks) = common::sdk_component("examples/python/tasks.py") else {
        return;
    };
    let text = std::fs::read_to_string(repo_root().join("examples/python/chain.json")).unwrap();
    let mut document: Value = serde_json::from_str(&text).unwrap();
    document["plugins"] = json!({"tasks": tasks, "math": common::plugin("math")});
    let chain = chain_file(&document);
    let run = common::run_file(&chain, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let result: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert!(
        result
            .as_str()
            .unwrap()
            .starts_with("4 sensors, mean total "),
        "{result}"
    );
    // Each sensor's read was autoretried once, then summed by Rust.
    let report = chain.command(&["status", "--json", "sensor-survey"]).json();
    let steps = report["steps"].as_array().unwrap();
    let reads: Vec<&Value> = steps.iter().filter(|s| s["task"] == "tasks.read").collect();
    assert_eq!(reads.len(), 4);
    assert!(reads.iter().all(|read| read["attempts"] == 2), "{reads:?}");
    let sums = steps.iter().filter(|s| s["task"] == "math.xsum").count();
    assert_eq!(sums, 4);

    if !common::celery_is_installed() {
        println!("skipped the comparison with Celery: Celery 5.7.0 is not installed");
        return;
    }
    let celery = std::process::Command::new("python3")
        .arg(repo_root().join("examples/python/on_celery.py"))
        .output()
        .unwrap();
    common::assert_succeeded(&celery);
    let on_celery: Value = serde_json::from_slice(&celery.stdout).unwrap();
    assert_eq!(result, on_celery);
}
