//! Tests of `trainer download` against HTTP servers on 127.0.0.1 that the tests start.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use sha2::{Digest, Sha256};
use trainer::download::{MnistFile, download, verify};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mnist")
}

/// Response of the test server for one file name.
#[derive(Clone)]
enum Answer {
    Serve(Vec<u8>),
    NotFound,
    /// Announce the full length but send only the first half, then close.
    Truncate(Vec<u8>),
}

/// Serves `answers` (file name → response) on 127.0.0.1 for a bounded number of requests and
/// returns the base URL.
fn serve(answers: Vec<(String, Answer)>, max_requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let answers = Arc::new(answers);
    thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            let mut request_line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let name = path.rsplit('/').next().unwrap_or("").to_string();
            let answer = answers.iter().find(|(n, _)| *n == name).map(|(_, a)| a.clone()).unwrap_or(Answer::NotFound);
            let _ = match answer {
                Answer::Serve(body) => {
                    write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                        .and_then(|()| stream.write_all(&body))
                }
                Answer::Truncate(body) => {
                    write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                        .and_then(|()| stream.write_all(&body[..body.len() / 2]))
                }
                Answer::NotFound => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            };
        }
    });
    format!("http://{address}/mnist/")
}

/// Returns the fixture's files with the size and digest of their decompressed bytes.
fn fixture_files() -> Vec<(MnistFile, Vec<u8>)> {
    let stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];
    stems
        .iter()
        .map(|&stem| {
            let compressed = std::fs::read(fixture().join(format!("{stem}.gz"))).unwrap();
            let mut raw = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut raw).unwrap();
            let digest: String = Sha256::digest(&raw).iter().map(|b| format!("{b:02x}")).collect();
            let file = MnistFile {
                stem,
                size: raw.len() as u64,
                sha256: Box::leak(digest.into_boxed_str()),
            };
            (file, compressed)
        })
        .collect()
}

#[test]
fn download_fetches_and_verifies_every_file() {
    let files = fixture_files();
    let answers = files.iter().map(|(f, bytes)| (format!("{}.gz", f.stem), Answer::Serve(bytes.clone()))).collect();
    let url = serve(answers, 8);
    let dir = tempfile::tempdir().unwrap();
    let list: Vec<MnistFile> = files.iter().map(|(f, _)| *f).collect();

    download(dir.path(), &[url], &list, false).unwrap();

    for (file, bytes) in &files {
        let written = std::fs::read(dir.path().join(format!("{}.gz", file.stem))).unwrap();
        assert_eq!(&written, bytes);
    }
    let mnist = shared::mnist::Mnist::load(dir.path(), shared::mnist::Split::Test).unwrap();
    assert_eq!(mnist.len(), 256);
}

#[test]
fn download_falls_back_to_the_next_mirror() {
    let files = fixture_files();
    let broken = serve(vec![], 8);
    let answers = files.iter().map(|(f, bytes)| (format!("{}.gz", f.stem), Answer::Serve(bytes.clone()))).collect();
    let good = serve(answers, 8);
    let dir = tempfile::tempdir().unwrap();
    let list: Vec<MnistFile> = files.iter().map(|(f, _)| *f).take(1).collect();

    download(dir.path(), &[broken, good], &list, false).unwrap();

    assert!(dir.path().join("train-images-idx3-ubyte.gz").is_file());
}

#[test]
fn truncated_download_leaves_nothing_behind() {
    let files = fixture_files();
    let (file, bytes) = files[0].clone();
    let url = serve(vec![(format!("{}.gz", file.stem), Answer::Truncate(bytes))], 4);
    let dir = tempfile::tempdir().unwrap();

    let error = download(dir.path(), std::slice::from_ref(&url), &[file], false).unwrap_err();

    let message = format!("{error:#}");
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("--mirror"), "{message}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files were left behind: {left:?}");
}

#[test]
fn wrong_digest_is_rejected() {
    let files = fixture_files();
    let (mut file, bytes) = files[1].clone();
    file.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    let url = serve(vec![(format!("{}.gz", file.stem), Answer::Serve(bytes.clone()))], 4);
    let dir = tempfile::tempdir().unwrap();

    let error = download(dir.path(), &[url], &[file], false).unwrap_err();

    assert!(format!("{error:#}").contains("SHA-256"), "{error:#}");
    assert!(!dir.path().join(format!("{}.gz", file.stem)).exists());
    assert!(verify(&files[1].0, &bytes).is_ok());
}

#[test]
fn valid_files_are_not_downloaded_again() {
    let files = fixture_files();
    let dir = tempfile::tempdir().unwrap();
    let (file, bytes) = files[1].clone();
    std::fs::write(dir.path().join(format!("{}.gz", file.stem)), &bytes).unwrap();
    // A server that returns 404 for every path, so a download attempt would fail.
    let url = serve(vec![], 4);

    download(dir.path(), &[url], &[file], false).unwrap();
}
