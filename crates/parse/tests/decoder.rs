//! The decoder itself: chunk boundaries, format names, detection, error paths, limits, multi-line text.

mod common;

use common::*;
use quarry_model::{Kind, Value};
use quarry_parse::{reparse, Decoder, DecoderOptions, Format, Multiline};

/// Splitting the input at every offset into two chunks gives the same events as one chunk.
fn every_split(format: Format, opts: DecoderOptions, input: &[u8]) {
    let (whole, stats, _) = decode_chunked(format, opts.clone(), input, NOW, 0);
    check_reparse(&whole);
    for k in 0..=input.len() {
        let mut d = Decoder::with_options(format, opts.clone());
        let mut out = Vec::new();
        d.feed(&input[..k], NOW, &mut out);
        d.feed(&input[k..], NOW, &mut out);
        d.finish(NOW, &mut out);
        assert_eq!(out, whole, "split at {k}");
        assert_eq!(d.stats(), &stats, "split at {k}");
    }
}

#[test]
fn chunk_boundaries_at_every_offset() {
    let cri = "2019-05-07T18:57:50.904275087+00:00 stdout P 1a. some \n2019-05-07T18:57:51.904275088+00:00 stdout P multiline \n2019-05-07T18:57:50.904275087+00:00 stderr F other\n2019-05-07T18:57:52.904275089+00:00 stdout F log\n";
    every_split(Format::Container, DecoderOptions::default(), cri.as_bytes());
    let docker = "{\"log\":\"a\\u00e9\",\"stream\":\"stdout\",\"time\":\"2021-02-01T16:45:03.01231Z\"}\r\n{\"log\":\"b\\n\",\"stream\":\"stdout\",\"time\":\"2021-02-01T16:45:03.01232Z\"}\nbroken\n";
    every_split(
        Format::Container,
        DecoderOptions::default(),
        docker.as_bytes(),
    );
    let pretty = "{\n  \"Records\": [\n    {\"eventVersion\": \"1.08\", \"eventTime\": \"2024-05-01T12:00:00Z\", \"eventName\": \"A\"},\n    {\"eventVersion\": \"1.08\", \"eventName\": \"B \\\"}\"}\n  ]\n}\n{\"eventVersion\":\"1.08\",\"eventName\":\"C\"}";
    every_split(
        Format::CloudTrail,
        DecoderOptions::default(),
        pretty.as_bytes(),
    );
    every_split(Format::Auto, DecoderOptions::default(), pretty.as_bytes());
    let vpc =
        "version srcaddr dstaddr start\n5 10.0.0.1 10.0.0.2 1600000000\n5 10.0.0.3 - 1600000001";
    every_split(Format::VpcFlow, DecoderOptions::default(), vpc.as_bytes());
    let java = "INFO a\njava.lang.RuntimeException: x\n\tat A.b(A.java:1)\n\t... 2 more\nINFO z\n";
    let ml = DecoderOptions {
        multiline: Some(Multiline::new(quarry_parse::MultilineMode::Auto)),
        ..DecoderOptions::default()
    };
    every_split(Format::Text, ml, java.as_bytes());
    let utf8 =
        "Jun 14 15:16:01 höst app[1]: ünïcödé 🙂\n<13>1 2020-03-13T20:45:38.119Z h a 1 ID - m\n";
    every_split(Format::Syslog, DecoderOptions::default(), utf8.as_bytes());
    every_split(
        Format::Journald,
        DecoderOptions::default(),
        JOURNAL.as_bytes(),
    );
}

/// `journalctl -o json --all` output (systemd 252) of a journal built with systemd-journal-remote: a
/// kubelet klog line, containerd, a MESSAGE that is not UTF-8 (a byte array), and a bad line.
const JOURNAL: &str = concat!(
    r#"{"_HOSTNAME":"node-1","MESSAGE":"I1123 10:00:00.000000     812 kubelet.go:2345] \"SyncLoop ADD\" source=\"api\"","_EXE":"/usr/bin/kubelet","PRIORITY":"6","SYSLOG_IDENTIFIER":"kubelet","_BOOT_ID":"0123456789abcdef0123456789abcdef","_UID":"0","_COMM":"kubelet","__REALTIME_TIMESTAMP":"1700733600000000","__MONOTONIC_TIMESTAMP":"1000000","_TRANSPORT":"stdout","__CURSOR":"s=03b5a0ef70ce4d7e84574350a140216e;i=1;b=0123456789abcdef0123456789abcdef;m=f4240;t=60acee615e800;x=118de8318e47f081","_SYSTEMD_UNIT":"kubelet.service","SYSLOG_FACILITY":"3","_PID":"812"}"#,
    "\n",
    r#"{"_HOSTNAME":"node-1","__REALTIME_TIMESTAMP":"1700733601000000","_TRANSPORT":"stdout","_PID":"700","MESSAGE":"time=\"2023-11-23T10:00:01.000000000Z\" level=info msg=\"StartContainer returns successfully\"","_SYSTEMD_UNIT":"containerd.service","__MONOTONIC_TIMESTAMP":"2000000","__CURSOR":"s=03b5a0ef70ce4d7e84574350a140216e;i=2;b=0123456789abcdef0123456789abcdef;m=1e8480;t=60acee6252a40;x=e9daf7de6d2c8c66","SYSLOG_IDENTIFIER":"containerd","_BOOT_ID":"0123456789abcdef0123456789abcdef","PRIORITY":"6"}"#,
    "\r\n",
    r#"{"__REALTIME_TIMESTAMP":"1700733602000000","MESSAGE":[98,97,100,32,255,254,32,195,169],"__CURSOR":"s=c02f;i=3"}"#,
    "\n\nnot json\n",
    r#"{"__CURSOR":"s=c02f;i=4","__REALTIME_TIMESTAMP":"1700733603000000"}"#,
);

#[test]
fn journald_lines_bad_ones_and_the_cap() {
    for fmt in [Format::Journald, Format::Auto] {
        let (evs, stats) = decode_bytewise(fmt, DecoderOptions::default(), JOURNAL.as_bytes(), NOW);
        assert_eq!(evs.len(), 5, "{fmt}");
        assert!(evs.iter().all(|e| e.format == "journald"));
        assert_eq!(evs[0].ts, 1_700_733_600_000_000_000);
        assert_eq!(evs[0].fields.get("file"), Some(&Value::from("kubelet.go")));
        assert_eq!(
            evs[1].fields.get("systemd.unit"),
            Some(&Value::from("containerd.service"))
        );
        assert!(evs[1].message().starts_with("time=\"2023-11-23T10:00:01"));
        assert_eq!(evs[2].message(), "bad \u{fffd}\u{fffd} é");
        assert!(evs[3].parse_error.is_some() && evs[3].ts == NOW);
        assert!(evs[4].parse_error.as_deref().unwrap().contains("MESSAGE"));
        assert_eq!(evs[4].ts, 1_700_733_603_000_000_000);
        assert_eq!(stats.parse_errors, 2);
        assert_eq!(stats.truncated, 0);
    }
    let opts = DecoderOptions {
        max_record_bytes: 200,
        ..DecoderOptions::default()
    };
    let (evs, stats) = decode_bytewise(Format::Journald, opts, JOURNAL.as_bytes(), NOW);
    assert_eq!(evs.len(), 5);
    assert_eq!(stats.truncated, 2);
    assert_eq!(evs[0].raw.len(), 200);
    assert_eq!(evs[0].hint.as_deref(), Some("max_record_bytes=200"));
    assert!(evs[0].parse_error.as_deref().unwrap().contains("cut"));
    assert_eq!(evs[2].parse_error, None);
}

#[test]
fn format_names_kinds_and_errors() {
    for f in Format::ALL {
        assert_eq!(f.as_str().parse::<Format>().unwrap(), f);
        assert_eq!(f.to_string(), f.as_str());
    }
    assert_eq!("VPCFLOW".parse::<Format>().unwrap(), Format::VpcFlow);
    let err = "nginx".parse::<Format>().unwrap_err().to_string();
    for f in Format::ALL {
        assert!(err.contains(f.as_str()), "{err}");
    }
    assert_eq!(Format::Cri.kind(), Kind::Container);
    assert_eq!(Format::Klog.kind(), Kind::Syslog);
    assert_eq!(Format::Logfmt.kind(), Kind::Json);
    assert_eq!(Format::Auto.kind(), Kind::Text);
    // Access audit records are JSON that only the server writes: read as JSON, stored as their own kind.
    for k in Kind::ALL.into_iter().filter(|k| *k != Kind::Access) {
        assert_eq!(Format::for_kind(k).kind(), k);
    }
    assert_eq!(Format::for_kind(Kind::Access), Format::Json);
    assert_eq!(Format::for_kind(Kind::Container), Format::Container);
    assert_eq!(Format::for_kind(Kind::Syslog), Format::Syslog);
}

#[test]
fn auto_keeps_the_first_detected_format() {
    let input = "Jun 14 15:16:01 combo sshd[1]: hi\n{\"a\":1}\n";
    let (evs, stats, f) = decode_chunked(
        Format::Auto,
        DecoderOptions::default(),
        input.as_bytes(),
        NOW,
        0,
    );
    assert_eq!(f, Format::Syslog);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[1].format, "syslog");
    assert!(evs[1].parse_error.is_some());
    assert_eq!(stats.parse_errors, 1);
    let d = Decoder::new(Format::Auto);
    assert_eq!(d.format(), Format::Auto);
    let (_, _, f) = decode_chunked(
        Format::Auto,
        DecoderOptions::default(),
        b"level=info msg=hi a=b\n",
        NOW,
        0,
    );
    assert_eq!(f, Format::Logfmt);
    let (_, _, f) = decode_chunked(
        Format::Auto,
        DecoderOptions::default(),
        b"{\"msg\":\"x\"}\n",
        NOW,
        0,
    );
    assert_eq!(f, Format::Json);
}

#[test]
fn bad_lines_in_the_middle_keep_the_others() {
    let cases: [(Format, &str); 6] = [
        (Format::Cri, "2024-05-01T12:00:00Z stdout F a\ngarbage\n2024-05-01T12:00:01Z stdout F b\n"),
        (Format::Syslog, "Jun 14 15:16:01 h a[1]: x\n???\nJun 14 15:16:02 h a[1]: y\n"),
        (Format::Klog, "I0505 17:59:40.692994 1 a.go:1] x\n  continuation\nW0505 17:59:41.000000 1 a.go:2] y\n"),
        (Format::Json, "{\"a\":1}\n{\"a\":\n[1,\n{\"b\":2}\n"),
        (Format::Logfmt, "a=1 b=2\nno pairs here\na=3\n"),
        (Format::CloudTrail, "{\"eventName\":\"A\"}\n42\n{\"eventName\":\"B\"}\n"),
    ];
    for (fmt, input) in cases {
        let (evs, stats) = decode_bytewise(fmt, DecoderOptions::default(), input.as_bytes(), NOW);
        let errs: Vec<bool> = evs.iter().map(|e| e.parse_error.is_some()).collect();
        assert!(evs.len() >= 3, "{fmt}: {evs:#?}");
        assert!(!errs[0] && !errs[errs.len() - 1], "{fmt}: {evs:#?}");
        assert!(errs.iter().any(|e| *e), "{fmt}");
        assert_eq!(
            stats.parse_errors as usize,
            errs.iter().filter(|e| **e).count()
        );
        for ev in evs.iter().filter(|e| e.parse_error.is_some()) {
            assert_eq!(ev.ts, NOW);
            assert!(!ev.raw.is_empty());
        }
    }
}

#[test]
fn json_record_over_the_cap_is_flagged_and_counted() {
    let big = format!(
        "{{\"kind\":\"Event\",\"auditID\":\"{}\"}}\n{{\"kind\":\"Event\",\"auditID\":\"ok\"}}\n",
        "x".repeat(200)
    );
    let opts = DecoderOptions {
        max_record_bytes: 100,
        ..DecoderOptions::default()
    };
    let (evs, stats) = decode_bytewise(Format::Audit, opts.clone(), big.as_bytes(), NOW);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].raw.len(), 100);
    assert!(evs[0]
        .parse_error
        .as_deref()
        .unwrap()
        .starts_with("record truncated at 100 bytes: invalid JSON"));
    assert_eq!(evs[0].hint.as_deref(), Some("max_record_bytes=100"));
    assert!(evs[1].parse_error.is_none());
    assert_eq!(stats.truncated, 1);
    // a pretty-printed document over the cap
    let doc = format!("{{\n\"kind\": \"Event\",\n\"auditID\": \"{}\"\n}}\n{{\"kind\":\"Event\",\"auditID\":\"ok\"}}\n", "y".repeat(200));
    let (evs, stats) = decode_bytewise(Format::Audit, opts, doc.as_bytes(), NOW);
    assert_eq!(evs.len(), 2);
    assert!(evs[0]
        .parse_error
        .as_deref()
        .unwrap()
        .starts_with("record truncated at 100 bytes"));
    assert!(evs[0].raw.len() <= 100);
    assert_eq!(stats.truncated, 1);
    // text lines are cut and kept
    let (evs, stats) = decode_bytewise(
        Format::Text,
        DecoderOptions {
            max_record_bytes: 10,
            ..DecoderOptions::default()
        },
        b"0123456789abcdef\nshort\n",
        NOW,
    );
    assert_eq!(
        evs.iter().map(|e| e.raw.as_str()).collect::<Vec<_>>(),
        vec!["0123456789", "short"]
    );
    assert_eq!(stats.truncated, 1);
    assert_eq!(stats.lines, 2);
}

#[test]
fn a_document_that_never_closes_does_not_swallow_the_stream() {
    let mut input = String::from("{\"a\": [\n");
    for i in 0..200 {
        input.push_str(&format!("text line {i}\n"));
    }
    let opts = DecoderOptions {
        max_record_bytes: 100,
        ..DecoderOptions::default()
    };
    let (evs, stats) = decode_bytewise(Format::Json, opts, input.as_bytes(), NOW);
    assert!(evs[0]
        .parse_error
        .as_deref()
        .unwrap()
        .starts_with("record truncated at 100 bytes"));
    // after 8 x 100 bytes the document is given up and the lines are read again one by one
    assert!(evs.len() > 100, "{}", evs.len());
    assert_eq!(evs.last().unwrap().raw, "text line 199");
    assert_eq!(stats.lines, 201);
}

#[test]
fn crlf_invalid_utf8_and_stats() {
    let input = b"hello\r\nbad \xff\xfe bytes\n\nlast without newline";
    let (evs, stats) = decode_bytewise(Format::Text, DecoderOptions::default(), input, NOW);
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[0].raw, "hello");
    assert_eq!(evs[1].raw, "bad \u{fffd}\u{fffd} bytes");
    assert_eq!(evs[2].raw, "last without newline");
    assert_eq!(stats.lines, 4);
    assert_eq!(stats.bytes, input.len() as u64);
    assert_eq!(stats.records, 3);
    assert_eq!(stats.parse_errors, 0);
}

#[test]
fn finish_flushes_and_the_decoder_goes_on() {
    let mut d = Decoder::new(Format::Cri);
    let mut out = Vec::new();
    d.feed(b"2024-05-01T12:00:00Z stdout P part", NOW, &mut out);
    assert!(out.is_empty());
    d.feed(b"ial\n", NOW, &mut out);
    assert!(out.is_empty(), "a P line waits for its F");
    d.finish(NOW, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].message(), "partial");
    assert_eq!(out[0].fields.get("logtag"), Some(&Value::from("P")));
    d.feed(b"2024-05-01T12:00:01Z stdout F next\n", NOW, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(d.stats().records, 2);
}

#[test]
fn text_multiline_python_and_go_and_timestamps() {
    let input = "2024-05-01 12:00:00,001 ERROR boom\nTraceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    f()\nValueError: bad\n2024-05-01 12:00:01,000 INFO after\npanic: oh no\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:5 +0x1d\nexit status 2\n";
    let opts = DecoderOptions {
        multiline: Some("auto".parse().unwrap()),
        ..DecoderOptions::default()
    };
    let (evs, _) = decode_bytewise(Format::Text, opts, input.as_bytes(), NOW);
    let raws: Vec<&str> = evs.iter().map(|e| e.raw.as_str()).collect();
    assert_eq!(raws.len(), 4, "{raws:#?}");
    assert_eq!(raws[1], "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    f()\nValueError: bad");
    assert_eq!(raws[3], "panic: oh no\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:5 +0x1d\nexit status 2");
    assert_eq!(evs[0].ts, rfc("2024-05-01T12:00:00.001Z"));
    assert_eq!(evs[1].ts, NOW);
    assert_eq!(evs[2].ts, rfc("2024-05-01T12:00:01Z"));
    assert!(evs.iter().all(|e| e.message.is_none()));
}

#[test]
fn reparse_of_unknown_format_and_auto() {
    let ev = reparse("nginx", "x", None, 5);
    assert!(ev
        .parse_error
        .as_deref()
        .unwrap()
        .contains("unknown log format"));
    let ev = reparse("auto", "Jun 14 15:16:01 combo sshd[7]: hi", None, 5);
    assert_eq!(ev.format, "syslog");
    assert_eq!(ev.fields.get("procid"), Some(&Value::Int(7)));
    assert_eq!(ev.ts, 5);
}

#[test]
fn logfmt_and_json_timestamps() {
    let input = "ts=2024-05-01T12:00:00Z level=info msg=\"a b\"\ntime=1714564800123 level=warn\n";
    let (evs, _) = decode_bytewise(
        Format::Logfmt,
        DecoderOptions::default(),
        input.as_bytes(),
        NOW,
    );
    assert_eq!(evs[0].ts, rfc("2024-05-01T12:00:00Z"));
    assert_eq!(evs[0].fields.get("msg"), Some(&Value::from("a b")));
    assert_eq!(evs[1].ts, rfc("2024-05-01T12:00:00.123Z"));
    let input = "{\"ts\":1714564800.5,\"msg\":\"x\"}\n{\"time\":\"2015-10-18 18:01:47,978\"}\n{\"eventTime\":\"Jun 14 15:16:01\"}\n{\"none\":1}\n";
    let (evs, _) = decode_bytewise(
        Format::Json,
        DecoderOptions::default(),
        input.as_bytes(),
        NOW,
    );
    assert_eq!(evs[0].ts, rfc("2024-05-01T12:00:00.5Z"));
    assert_eq!(evs[1].ts, rfc("2015-10-18T18:01:47.978Z"));
    assert_eq!(evs[2].ts, rfc("2024-06-14T15:16:01Z"));
    assert_eq!(evs[3].ts, NOW);
}

/// Mangled bytes from every kind of sample, through every format: no panic, everything reads back.
#[test]
fn mangled_input_never_panics() {
    let samples = [
        read("container_logs/test_vectors/fluent-bit_multiline_c_vectors.json"),
        read("k8s_audit/elastic_integrations/packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline/test-audit.log"),
        read("aws/elastic_integrations/packages/aws/data_stream/vpcflow/_dev/test/pipeline/test-tcp-flag-sequence.log"),
        read("aws/awsdocs_eks_cloudtrail/eks_cloudtrail_examples.jsonl"),
        JOURNAL.as_bytes().to_vec(),
        b"<13>1 2020-03-13T20:45:38.119Z h a 1 ID [x@1 a=\"b\\\"\"] m\nI0505 17:59:40.692994 1 a.go:1] x\nJun 14 15:16:01 h a[1]: y\nk=v x=\"y\"\n2024-05-01T12:00:00Z stdout P a\n".to_vec(),
    ];
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let ml = Multiline::new(quarry_parse::MultilineMode::Auto);
    for sample in &samples {
        for round in 0..40 {
            let mut bytes = sample.clone();
            for _ in 0..(rnd() % 12) {
                let i = (rnd() as usize) % bytes.len().max(1);
                if let Some(b) = bytes.get_mut(i) {
                    *b = [b'{', b'}', b'"', b'\n', b'\\', b' ', b'[', 0xff, b':', b'<']
                        [(rnd() % 10) as usize];
                }
            }
            let cut = (rnd() as usize) % (bytes.len() + 1);
            bytes.truncate(cut);
            for f in Format::ALL {
                let opts = DecoderOptions {
                    max_record_bytes: if round % 3 == 0 { 64 } else { 1 << 20 },
                    multiline: (round % 2 == 0).then(|| ml.clone()),
                    vpc_format: (round % 5 == 0).then(|| "${version} ${start}".to_string()),
                };
                let (evs, stats, _) =
                    decode_chunked(f, opts, &bytes, NOW, 1 + (rnd() as usize) % 7);
                check_reparse(&evs);
                assert_eq!(stats.records as usize, evs.len());
            }
        }
    }
}
