//! The router end to end on librdkafka's mock cluster (the embedded dev
//! broker), driven by Debian's kcat as the outside client.

mod support;

use support::e2e::run_example;
use support::kafka::Broker;

#[test]
fn booking_example_end_to_end() {
    assert!(run_example(Broker::mock, "booking") >= 6);
}

#[test]
fn resource_booking_example_end_to_end() {
    assert!(run_example(Broker::mock, "resource-booking") >= 4);
}

#[test]
fn autocheck_example_end_to_end() {
    assert!(run_example(Broker::mock, "autocheck") >= 2);
}

#[test]
fn travel_example_end_to_end() {
    assert!(run_example(Broker::mock, "travel") >= 2);
}

#[test]
fn pet_delivery_example_end_to_end() {
    assert!(run_example(Broker::mock, "pet-delivery") >= 3);
}

#[test]
fn python_receipt_example_end_to_end() {
    assert!(run_example(Broker::mock, "booking-python") >= 1);
}

#[test]
fn js_receipt_example_end_to_end() {
    assert!(run_example(Broker::mock, "booking-js") >= 1);
}
