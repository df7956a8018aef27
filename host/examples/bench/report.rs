//! The report: BENCHMARKS.md's results section, one markdown table per
//! measure, in the order the measures run.

use crate::p1_throughput::{Alone, P1, Sample};
use crate::p2_plugin_cost::P2;
use crate::p3_reload::P3;
use crate::p4_startup::P4;
use crate::p6_scale_out::P6;
use crate::p7_latency::P7;
use crate::p8_languages::P8;
use std::fmt::Write as _;
use switchyard_testkit::root;

/// The line naming the machine, the date and the versions.
pub fn header(out: &mut String) {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    writeln!(
        out,
        "Run on {} ({} cores, {cpu}); rustc release build; wasmtime {}, rdkafka {} (librdkafka {}).\n",
        chrono_date(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        version_of(&lock, "wasmtime"),
        version_of(&lock, "rdkafka"),
        rdkafka::util::get_rdkafka_version().1,
    )
    .unwrap();
}

/// P1's table, the cost of exactly-once where both guarantees ran, and the
/// router against Kafka Streams where it ran.
pub fn p1(out: &mut String, rows: &[P1]) {
    writeln!(out, "## P1: end-to-end throughput\n").unwrap();
    writeln!(out, "Steady state: first record consumed → last output acknowledged and its offset stored (Kafka Streams: → last output acknowledged at-least-once, → its input offsets committed with the outputs' transaction exactly-once). With join: from client start, group join included (Kafka Streams: from the `java` spawn, JVM start-up included).\n").unwrap();
    writeln!(out, "| broker | guarantee | partitions | records | bytes/record | router rec/s | passthrough rec/s | raw consume rec/s | Kafka Streams rec/s | **router / passthrough** | router / raw | **router / Kafka Streams** | with join: router / passthrough | with join: router / Kafka Streams |").unwrap();
    writeln!(
        out,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    .unwrap();
    let mut router_rates = std::collections::HashMap::new();
    for r in rows {
        let (name, guarantee) = r.names();
        let (router, pass, raw) = r.rates();
        router_rates.insert((r.kafka, r.exactly_once, r.partitions), router);
        let (ks_rate, ks_ratio, ks_join) = match (r.kstreams_rate(), r.kstreams) {
            (Some(ks), Some(run)) => (
                format!("{ks:.0}"),
                format!("**{:.2}x**", router / ks),
                format!(
                    "{:.2}x ({:.2} s vs {:.2} s)",
                    run.total.as_secs_f64() / r.router.total.as_secs_f64(),
                    r.router.total.as_secs_f64(),
                    run.total.as_secs_f64()
                ),
            ),
            _ => ("–".into(), "–".into(), "–".into()),
        };
        writeln!(
            out,
            "| {name} | {guarantee} | {} | {} | {} | {router:.0} | {pass:.0} | {raw:.0} | {ks_rate} | **{:.2}x** | {:.2}x | {ks_ratio} | {:.2}x ({:.2} s vs {:.2} s) | {ks_join} |",
            r.partitions, r.n, r.size, router / pass, router / raw,
            r.passthrough.total.as_secs_f64() / r.router.total.as_secs_f64(),
            r.router.total.as_secs_f64(), r.passthrough.total.as_secs_f64(),
        )
        .unwrap();
    }
    writeln!(out).unwrap();
    for p in [3, 12] {
        if let (Some(eos), Some(alo)) = (
            router_rates.get(&(true, true, p)),
            router_rates.get(&(true, false, p)),
        ) {
            writeln!(
                out,
                "The cost of exactly-once on Apache Kafka at {p} partitions: the router with it runs at **{:.2}x** its at-least-once rate.\n",
                eos / alo
            )
            .unwrap();
        }
    }
    for r in rows.iter().filter(|r| r.kafka && r.exactly_once) {
        if let Some(ks) = r.kstreams_rate() {
            writeln!(
                out,
                "P1b, the router against Kafka Streams exactly-once at {} partitions: **{:.2}x** (target ≥ 1.0x).\n",
                r.partitions,
                r.rates().0 / ks
            )
            .unwrap();
        }
    }
}

/// P1a and P1c side by side ([`crate::p1_throughput::alone`]): each
/// path alone on its own broker, in turns.
pub fn p1_alone(out: &mut String, rows: &[Alone]) {
    if rows.is_empty() {
        return;
    }
    let mean =
        |v: &[Sample], f: fn(&Sample) -> f64| v.iter().map(f).sum::<f64>() / v.len().max(1) as f64;
    let rate = |v: &[Sample]| mean(v, |s| s.rate);
    let list = |v: &[Sample]| {
        v.iter()
            .map(|s| format!("{:.0}", s.rate))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let cpu = |v: &[Sample]| {
        format!(
            "{:.1} + broker {:.1}",
            mean(v, |s| s.own_us),
            mean(v, |s| s.broker_us)
        )
    };
    // The four paths' cells of a row, `cell` formatting each.
    let cells = |r: &Alone, cell: &dyn Fn(&[Sample]) -> String| {
        [&r.passthrough, &r.at_least_once, &r.exactly_once, &r.python]
            .map(|v| cell(v))
            .join(" | ")
    };
    writeln!(out, "**P1a and P1c side by side** (Apache Kafka; each path alone on a fresh broker with the same 200,000 bookings, nothing else running, in turns: passthrough, router at-least-once, router exactly-once, the plain Python script; two rounds):\n").unwrap();
    writeln!(out, "| partitions | passthrough rec/s | router at-least-once rec/s | router exactly-once rec/s | Python script rec/s | **P1a: router / passthrough** | **P1c: exactly-once / at-least-once** | **router / Python script** (at-least-once) |").unwrap();
    writeln!(out, "|---|---|---|---|---|---|---|---|").unwrap();
    for r in rows {
        let (pass, alo, eos, py) = (
            rate(&r.passthrough),
            rate(&r.at_least_once),
            rate(&r.exactly_once),
            rate(&r.python),
        );
        writeln!(
            out,
            "| {} | {} | **{:.2}x** | **{:.2}x** | **{:.2}x** |",
            r.partitions,
            cells(r, &list),
            alo / pass,
            eos / alo,
            alo / py
        )
        .unwrap();
    }
    writeln!(out, "\n(Ratios of the rounds' means.)\n").unwrap();
    writeln!(out, "CPU time per record in the same runs' steady state (first record → last acknowledged, without start and shutdown), µs, the rounds' means: each path's own process, and the broker's JVM (both on the same 2 cores):\n").unwrap();
    writeln!(
        out,
        "| partitions | passthrough | router at-least-once | router exactly-once | Python script |"
    )
    .unwrap();
    writeln!(out, "|---|---|---|---|---|").unwrap();
    for r in rows {
        writeln!(out, "| {} | {} |", r.partitions, cells(r, &cpu)).unwrap();
    }
    writeln!(out).unwrap();
}

/// P2's table.
pub fn p2(out: &mut String, r: &P2) {
    writeln!(
        out,
        "## P2: per-event plugin cost (payment plugin, catalog-000 booking)\n"
    )
    .unwrap();
    writeln!(out, "| path | us/event | vs native |").unwrap();
    writeln!(out, "|---|---|---|").unwrap();
    writeln!(
        out,
        "| native Rust (same handler, in this process) | {:.2} | 1.00x |",
        r.native_us
    )
    .unwrap();
    writeln!(
        out,
        "| wasm, reused instance | {:.2} | **{:.2}x** |",
        r.reused_us, r.reused_ratio
    )
    .unwrap();
    writeln!(
        out,
        "| wasm, fresh instance per event | {:.2} | {:.2}x |\n",
        r.fresh_us, r.fresh_ratio
    )
    .unwrap();
}

/// P3's percentiles.
pub fn p3(out: &mut String, r: &P3) {
    percentile_table(
        out,
        "P3: hot reload, file renamed into place → new version live",
        "compile cache",
        &[
            ("warm (version compiled before)", r.warm),
            ("cold (new bytes: compile)", r.cold),
        ],
    );
}

/// P4's table.
pub fn p4(out: &mut String, r: &P4) {
    writeln!(
        out,
        "## P4: `switchyard run` start (process spawn) → ready, → first record routed\n"
    )
    .unwrap();
    writeln!(
        out,
        "| compile cache | → /readyz 200 ms | → first output ms |"
    )
    .unwrap();
    writeln!(out, "|---|---|---|").unwrap();
    writeln!(out, "| cold | {:.0} | {:.0} |", r.cold_ready, r.cold_first).unwrap();
    writeln!(out, "| warm | {:.0} | {:.0} |", r.warm_ready, r.warm_first).unwrap();
    writeln!(
        out,
        "| **warm / cold (ready)** | **{:.2}x** | {:.2}x |\n",
        r.warm_ready / r.cold_ready,
        r.warm_first / r.cold_first
    )
    .unwrap();
}

/// P5's table: `mb`, the peak RSS in MB.
pub fn p5(out: &mut String, mb: f64) {
    writeln!(
        out,
        "## P5: peak RSS, 4 plugins, 12 partitions, 12,000 bookings through payment → receipt\n"
    )
    .unwrap();
    writeln!(
        out,
        "| measure | value |\n|---|---|\n| VmHWM of `switchyard run` | {mb:.0} MB |\n"
    )
    .unwrap();
}

/// P10's table: records/s without and with a shadow.
pub fn p10(out: &mut String, rates: Option<(f64, f64)>) {
    let Some((plain, shadowed)) = rates else {
        return;
    };
    writeln!(
        out,
        "## P10: a shadow version attached (P1's setup, Apache Kafka, 3 partitions, at-least-once)\n\n| router | rec/s |\n|---|---|\n| no shadow | {plain:.0} |\n| the payment plugin shadowed by itself (another hash) | {shadowed:.0} |\n| **with / without** | **{:.2}x** |\n",
        shadowed / plain
    )
    .unwrap();
}

/// P9's table.
pub fn p9(out: &mut String, p: &crate::p9_timers::P9) {
    writeln!(
        out,
        "## P9: timers\n\nRecords through `switchyard run` on the embedded broker, redb state, with no timer pending and with {} pending in the store (on the input's partitions) at the start: 45,000 bookings on 12 partitions for the payment plugin, {} ticks on 6 partitions for the counter guest.\n",
        p.pending, p.records
    )
    .unwrap();
    writeln!(
        out,
        "| records | rec/s, 0 pending | rec/s, {} pending | **ratio** | peak RSS, 0 / {} pending |\n|---|---|---|---|---|",
        p.pending, p.pending
    )
    .unwrap();
    for (what, rates, mb) in [
        (
            "P1's payment plugin (sets no timer)",
            p.payment,
            p.payment_mb,
        ),
        (
            "the counter guest, one timer set per record (due in a day)",
            p.rates,
            p.rss_mb,
        ),
    ] {
        writeln!(
            out,
            "| {what} | {:.0} | {:.0} | **{:.2}x** | {:.0} / {:.0} MB |",
            rates.0,
            rates.1,
            rates.1 / rates.0,
            mb.0,
            mb.1
        )
        .unwrap();
    }
    writeln!(out).unwrap();
    writeln!(
        out,
        "Lateness at light load ({} timers due 2-12 s after their records, the router otherwise idle), from `switchyard_timer_lateness_seconds`: p50 <= {} s, p99 <= {} s (histogram bucket bounds).\n",
        p.lateness.0, p.lateness.1, p.lateness.2
    )
    .unwrap();
}

/// P8's table: `native`, the native handler's us/event.
pub fn p8(out: &mut String, rows: &[P8], native: f64) {
    writeln!(
        out,
        "## P8: plugins in Rust, Python and JavaScript (the receipt plugin, the same fixtures)\n"
    )
    .unwrap();
    writeln!(out, "Compile: a cold compile cache; a rebuilt component (another hash, the same code) with the function cache warm; a cached component. Per event: a `payment.payment.succeeded` through the plugin on a reused (the router's default) and a fresh instance, against the Rust handler compiled natively into this program ({native:.2} us/event).\n").unwrap();
    writeln!(out, "| language | size MB | compile cold s | rebuilt s | cache load ms | reused us/event | vs native | fresh us/event | vs native |").unwrap();
    writeln!(out, "|---|---|---|---|---|---|---|---|---|").unwrap();
    for r in rows {
        writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {:.0}x | {:.0} | {:.0}x |",
            r.lang,
            r.size_mb,
            r.cold_s,
            r.rebuilt_s,
            r.cached_ms,
            r.reused_us,
            r.reused_ratio,
            r.fresh_us,
            r.fresh_ratio
        )
        .unwrap();
    }
    writeln!(out).unwrap();
}

/// P6's table.
pub fn p6(out: &mut String, rows: &[P6]) {
    writeln!(
        out,
        "## P6: scale-out on a shared PostgreSQL store\n\n\
         18,000 bookings through the payment plugin on 6 partitions of the embedded broker; \
         the instances run in one process, in one consumer group, on this machine's cores. \
         Steady state: first record consumed → last offset stored, summed over instances.\n\n\
         | setup | rec/s | **/ redb** | batch commits | mean commit wait ms | records re-run | aborted transactions |\n\
         |---|---|---|---|---|---|---|"
    )
    .unwrap();
    let base = rows[0].rate;
    for r in rows {
        writeln!(
            out,
            "| {} | {:.0} | {:.2}× | {} | {:.1} | {} | {} |",
            r.label,
            r.rate,
            r.rate / base,
            r.commits,
            r.commit_ms,
            r.reruns,
            r.aborted
        )
        .unwrap();
    }
    writeln!(out).unwrap();
}

/// P7's percentiles, and the router's cost over the passthrough.
pub fn p7(out: &mut String, r: &P7) {
    let gap = (r.router.0 - r.passthrough.0, r.router.1 - r.passthrough.1);
    percentile_table(
        out,
        "P7: one hop at light load (produce input → output consumed), 200 samples",
        "path",
        &[
            ("passthrough", r.passthrough),
            ("router (payment)", r.router),
            ("**router − passthrough**", gap),
        ],
    );
}

/// A markdown table of p50 and p99 milliseconds, one row per measure.
fn percentile_table(out: &mut String, title: &str, what: &str, rows: &[(&str, (f64, f64))]) {
    writeln!(
        out,
        "## {title}\n\n| {what} | p50 ms | p99 ms |\n|---|---|---|"
    )
    .unwrap();
    for (name, (p50, p99)) in rows {
        writeln!(out, "| {name} | {p50:.1} | {p99:.1} |").unwrap();
    }
    writeln!(out).unwrap();
}

/// Now, in UTC, to the minute.
fn chrono_date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The version of `package` in the lock file `text`.
fn version_of(text: &str, package: &str) -> String {
    let needle = format!("name = \"{package}\"\nversion = \"");
    text.find(&needle)
        .map(|i| {
            let rest = &text[i + needle.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_string()
        })
        .unwrap_or_default()
}
