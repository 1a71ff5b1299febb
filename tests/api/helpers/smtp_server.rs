//! A real SMTP server for tests: mailin's protocol state machine over a tokio listener on
//! 127.0.0.1, handing each received message (parsed) to the test.

use std::{
    io,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use mailin::{response, Action, Handler, Response, SessionBuilder};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
    sync::Notify,
};

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub message_id: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Default)]
struct Inbox {
    mails: Mutex<Vec<Mail>>,
    arrived: Notify,
    /// How many more messages are taken without their `250 OK` reaching the sender (the
    /// connection closes instead), as when a reply is lost on the way.
    lose_replies: std::sync::atomic::AtomicUsize,
}

#[derive(Clone)]
struct Collector {
    inbox: Arc<Inbox>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collector {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let parsed = mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a parsable message");
        let mail = Mail {
            to: self.to.clone(),
            message_id: parsed.message_id().unwrap_or_default().to_owned(),
            subject: parsed.subject().unwrap_or_default().to_owned(),
            text: parsed
                .body_text(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            html: parsed
                .body_html(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
        };
        self.inbox.mails.lock().unwrap().push(mail);
        self.inbox.arrived.notify_waiters();
        response::OK
    }
}

pub struct SmtpServer {
    pub port: u16,
    inbox: Arc<Inbox>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        Self::start_on(0).await
    }

    /// On a given port, to bring a server "back up".
    pub async fn start_on(port: u16) -> SmtpServer {
        Self::start_with(port, 0).await
    }

    /// One that keeps the first `lost` messages but never answers them.
    pub async fn start_losing_replies(lost: usize) -> SmtpServer {
        Self::start_with(0, lost).await
    }

    async fn start_with(port: u16, lost: usize) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let inbox = Arc::new(Inbox::default());
        inbox
            .lose_replies
            .store(lost, std::sync::atomic::Ordering::SeqCst);
        let shared = inbox.clone();
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let handler = Collector {
                    inbox: shared.clone(),
                    to: Vec::new(),
                    data: Vec::new(),
                };
                tokio::spawn(serve(stream, peer.ip(), handler, shared.clone()));
            }
        });
        SmtpServer { port, inbox }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.inbox.mails.lock().unwrap().clone()
    }

    /// Waits (at most `DEADLINE`) until `n` messages have arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + crate::helpers::DEADLINE;
        loop {
            let notified = self.inbox.arrived.notified();
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {n} e-mails, got {} before the deadline",
                    mails.len()
                );
            }
        }
    }
}

async fn serve(stream: tokio::net::TcpStream, ip: IpAddr, handler: Collector, inbox: Arc<Inbox>) {
    let mut session = SessionBuilder::new("test.smtp.local").build(ip, handler);
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut out = Vec::new();
    session.greeting().write_to(&mut out).unwrap();
    if writer.write_all(&out).await.is_err() {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let kept = inbox.mails.lock().unwrap().len();
        let response = session.process(&line);
        let taken = inbox.mails.lock().unwrap().len() > kept;
        if taken
            && inbox
                .lose_replies
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
        {
            return; // the message is kept; its reply never reaches the sender
        }
        match response.action {
            Action::NoReply => continue,
            Action::Close | Action::UpgradeTls => {
                out.clear();
                response.write_to(&mut out).unwrap();
                let _ = writer.write_all(&out).await;
                return;
            }
            Action::Reply => {
                out.clear();
                response.write_to(&mut out).unwrap();
                if writer.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
    }
}
