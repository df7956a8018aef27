//! The same end-to-end flows against Tansu, an independent Kafka-compatible
//! broker, driven by confluent-kafka (PyPI) as the outside client: Debian's
//! kcat links librdkafka 2.0, whose handshake Tansu 0.6 rejects.
//! `scripts/setup.sh` installs both.

mod support;

use support::e2e::run_example;
use support::kafka::Broker;

#[test]
fn booking_example_on_tansu() {
    assert!(run_example(Broker::tansu, "booking") >= 6);
}

#[test]
fn resource_booking_example_on_tansu() {
    assert!(run_example(Broker::tansu, "resource-booking") >= 4);
}

#[test]
fn autocheck_example_on_tansu() {
    assert!(run_example(Broker::tansu, "autocheck") >= 2);
}

#[test]
fn travel_example_on_tansu() {
    assert!(run_example(Broker::tansu, "travel") >= 2);
}

#[test]
fn pet_delivery_example_on_tansu() {
    assert!(run_example(Broker::tansu, "pet-delivery") >= 3);
}
