//! `Redactor::redact` must not allocate when nothing matches. A counting global allocator (this test binary
//! only) checks that over every loghub line that needs no redaction.

mod common;

use common::{loghub_lines, SYSTEMS};
use quarry_redact::{Action, CustomRule, RedactConfig, Redactor, Verdict};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

#[test]
fn no_allocation_when_nothing_matches() {
    let rule = |name: &str, pattern: &str| CustomRule {
        name: name.into(),
        pattern: pattern.into(),
        action: Action::Mask,
    };
    let configs = [
        RedactConfig::default(),
        RedactConfig {
            custom: vec![rule("emp", r"\bEMP-\d{6}\b")],
            ..RedactConfig::default()
        },
        RedactConfig {
            custom: vec![
                rule("emp", r"\bEMP-\d{6}\b"),
                rule("ticket", r"TCK-[A-Z]{3}\d+"),
            ],
            ..RedactConfig::default()
        },
    ];
    let mut lines = Vec::new();
    for sys in SYSTEMS {
        lines.extend(loghub_lines(sys));
    }
    for cfg in &configs {
        let r = Redactor::new(cfg).unwrap();
        let clean: Vec<String> = lines
            .iter()
            .filter(|l| r.redact(&mut (*l).clone()) == Verdict::Keep)
            .cloned()
            .collect();
        assert!(clean.len() > 31_000, "{}", clean.len());
        let mut clean = clean;
        let before = allocations();
        for line in &mut clean {
            r.redact(line);
        }
        let n = allocations() - before;
        assert_eq!(
            n,
            0,
            "{n} allocations over {} clean lines with {} custom rules",
            clean.len(),
            cfg.custom.len()
        );
    }
    // The counter does count: a match allocates the rewritten text.
    let r = Redactor::new(&RedactConfig::default()).unwrap();
    let mut s = "mail a@b.io".to_string();
    let before = allocations();
    r.redact(&mut s);
    assert!(allocations() > before);
}
