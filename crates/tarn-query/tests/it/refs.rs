//! Every ref form of SPEC §5 read through `tarn('...')`, one call per query and all of them
//! in one query, against the quoted-table form of the same URI: each call reads its own
//! snapshot, however many calls a statement holds.

use super::*;
use std::time::Duration;

/// `g/l` on `main`: v1 20 rows, v2 +10, v3 +5; tag `first` on v1; branch `dev` forked at
/// v2 with its own v3 of +3 rows. Every snapshot has a different row count and sum.
async fn history(lake: &Lake) {
    let rows = |from: i64, n: i64| -> Vec<(i64, f64)> {
        (from..from + n)
            .map(|i| (BASE + i * 60, i as f64))
            .collect()
    };
    let pause = || tokio::time::sleep(Duration::from_millis(5));
    lake.write(
        "tarn://g/l",
        batch(&rows(0, 20)),
        WriteRequest::new().ordered_on("ts"),
    )
    .await
    .expect("v1");
    pause().await;
    lake.write("tarn://g/l", batch(&rows(20, 10)), WriteRequest::new())
        .await
        .expect("v2");
    pause().await;
    lake.write("tarn://g/l", batch(&rows(30, 5)), WriteRequest::new())
        .await
        .expect("v3");
    lake.tag("tarn://g/l:v1", "first", false)
        .await
        .expect("tag");
    lake.create_branch("tarn://g/l:v2", "dev")
        .await
        .expect("branch");
    pause().await;
    lake.write("tarn://g/l@dev", batch(&rows(100, 3)), WriteRequest::new())
        .await
        .expect("dev v3");
}

/// `(count, sum of v)` of the first `n` rows written by [`history`] on `main`, or of `dev`.
fn expected(n: i64, dev: bool) -> (i64, f64) {
    let mut values: Vec<i64> = (0..n).collect();
    if dev {
        values.extend(100..103);
    }
    (values.len() as i64, values.iter().sum::<i64>() as f64)
}

#[test]
fn every_ref_form_through_the_table_function_reads_its_own_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let lake = lake(dir.path()).await;
        history(&lake).await;
        let log = lake.log("tarn://g/l", None).await.expect("log");
        let at = |v: u64| {
            log.iter()
                .find(|l| l.version == v)
                .map(|l| l.timestamp.clone())
                .unwrap_or_else(|| panic!("no v{v} in the log"))
        };
        let (t1, t2) = (at(1), at(2));
        assert!(t1 < t2, "{t1} {t2}");
        let day = at(3)[..10].to_string();
        assert_eq!(at(1)[..10], day, "the history was written within one day");

        let forms: Vec<(String, (i64, f64))> = [
            ("g/l", expected(35, false)),
            ("g/l:latest", expected(35, false)),
            ("g/l:v1", expected(20, false)),
            ("g/l:v2", expected(30, false)),
            ("g/l:v3", expected(35, false)),
            ("g/l:0", expected(20, false)),
            ("g/l:1", expected(30, false)),
            ("g/l:-1", expected(35, false)),
            ("g/l:-2", expected(30, false)),
            ("g/l:first", expected(20, false)),
            (&format!("g/l:{t1}"), expected(20, false)),
            (&format!("g/l:{t2}"), expected(30, false)),
            (&format!("g/l:{day}"), expected(35, false)),
            ("g/l@dev", expected(30, true)),
            ("g/l@dev:latest", expected(30, true)),
            ("g/l@dev:v3", expected(30, true)),
            ("g/l@dev:v1", expected(20, false)),
            ("g/l@dev:-2", expected(30, false)),
            ("g/l@main:v2", expected(30, false)),
        ]
        .into_iter()
        .map(|(f, want)| (f.to_string(), want))
        .collect();
        let session = QuerySession::new(&lake, None).await.expect("session");
        let counted = |out: &[RecordBatch]| (i64s(out, 0)[0], f64s(out, 1)[0]);

        // One query per form, through tarn() and through the quoted table.
        for (form, want) in &forms {
            for from in [format!("tarn('tarn://{form}')"), format!("\"{form}\"")] {
                let out = query(&session, &format!("SELECT count(*), sum(v) FROM {from}")).await;
                assert_eq!(counted(&out), *want, "{from}");
            }
        }

        // Every form in one query, as scalar subqueries and as a UNION ALL.
        for quoted in [false, true] {
            let from = |form: &str| {
                if quoted {
                    format!("\"{form}\"")
                } else {
                    format!("tarn('tarn://{form}')")
                }
            };
            let columns: Vec<String> = forms
                .iter()
                .enumerate()
                .map(|(i, (f, _))| format!("(SELECT sum(v) FROM {}) AS s{i}", from(f)))
                .collect();
            let out = query(&session, &format!("SELECT {}", columns.join(", "))).await;
            let got: Vec<f64> = (0..forms.len()).map(|i| f64s(&out, i)[0]).collect();
            let want: Vec<f64> = forms.iter().map(|(_, w)| w.1).collect();
            assert_eq!(got, want, "scalar subqueries, quoted: {quoted}");

            let union: Vec<String> = forms
                .iter()
                .enumerate()
                .map(|(i, (f, _))| {
                    format!(
                        "SELECT {i} AS k, count(*) AS n, sum(v) AS s FROM {}",
                        from(f)
                    )
                })
                .collect();
            let out = query(
                &session,
                &format!(
                    "SELECT n, s FROM ({}) ORDER BY k",
                    union.join(" UNION ALL ")
                ),
            )
            .await;
            let got: Vec<(i64, f64)> = i64s(&out, 0).into_iter().zip(f64s(&out, 1)).collect();
            let want: Vec<(i64, f64)> = forms.iter().map(|(_, w)| *w).collect();
            assert_eq!(got, want, "union, quoted: {quoted}");
        }

        // The query of the report, and a join of two versions of one dataset.
        let out = query(
            &session,
            "SELECT (SELECT count(*) FROM tarn('tarn://g/l:v2')) \
                  - (SELECT count(*) FROM tarn('tarn://g/l:v1')) AS d",
        )
        .await;
        assert_eq!(i64s(&out, 0), vec![10]);
        let out = query(
            &session,
            "SELECT count(*) FROM tarn('tarn://g/l:v3') n \
             LEFT JOIN tarn('tarn://g/l:v1') o ON n.ts = o.ts WHERE o.ts IS NULL",
        )
        .await;
        assert_eq!(i64s(&out, 0), vec![15]);
    });
}
