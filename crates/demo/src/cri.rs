//! Container logs in the CRI format containerd writes to `/var/log/pods/<ns>_<pod>_<uid>/<container>/0.log`:
//! `<RFC 3339 nano> <stdout|stderr> <P|F> <text>`, lines longer than 16 KiB split into partials.

use crate::fmt::{self, Clock};
use crate::rng::{self, Rng};
use crate::stream::{Actors, CriLine, Sched, Script, SCRIPT};
use crate::topo::{App, Pod, Topo};
use quarry_model::time::NANOS_PER_SEC;
use std::sync::Arc;

const SEC: i64 = NANOS_PER_SEC;
const MS: i64 = 1_000_000;
const US: i64 = 1_000;
/// containerd's `max_container_log_line_size`.
const MAX_LINE: usize = 16 * 1024;

/// Where a container's log lives in the tree.
pub fn path(p: &Pod, container: &str) -> String {
    format!(
        "var/log/pods/{}_{}_{}/{}/0.log",
        p.ns, p.name, p.uid, container
    )
}

#[derive(Clone, Copy)]
enum Actor {
    NginxRequest,
    NginxProbe,
    AlbCheck(usize),
    NginxError,
    NginxScan,
    JavaLog,
    JavaTrace,
    JavaPayload,
    PgReconnect(usize),
    PgCheckpoint,
    PgSlow,
    PgError,
    PgVacuum,
    DnsQuery,
    DnsError,
    AwsNode,
    KubeProxy,
}

const UAS: [&str; 16] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.118 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "ShopApp/4.12.0 (iPhone; iOS 17.4.1; Scale/3.00)",
    "ShopApp/4.12.0 (Android 14; SM-S918B)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36 OPR/109.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
];

const CATEGORIES: [&str; 10] = [
    "shoes", "jackets", "bags", "watches", "outdoor", "kitchen", "toys", "books", "audio", "garden",
];

const SEARCHES: [&str; 12] = [
    "running+shoes",
    "rain+jacket",
    "backpack",
    "wireless+headphones",
    "coffee+grinder",
    "hiking+boots",
    "lego",
    "yoga+mat",
    "desk+lamp",
    "water+bottle",
    "sunglasses",
    "gift+card",
];

const SCAN_PATHS: [(&str, u16); 14] = [
    ("/.env", 404),
    ("/wp-login.php", 404),
    ("/.git/config", 404),
    ("/phpmyadmin/index.php", 404),
    ("/admin/config.php", 404),
    ("/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", 404),
    ("/actuator/env", 404),
    ("/server-status", 404),
    ("/cgi-bin/luci/;stok=/locale", 400),
    ("/.aws/credentials", 404),
    ("/api/v1/pods", 404),
    ("/owa/auth/logon.aspx", 404),
    ("/boaform/admin/formLogin", 404),
    ("/.DS_Store", 404),
];

const SCAN_UAS: [&str; 5] = [
    "Mozilla/5.0 zgrab/0.x",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/81.0.4044.129 Safari/537.36",
    "curl/7.68.0",
];

/// One container's log file.
pub struct CriStream {
    topo: Arc<Topo>,
    pod: usize,
    r: Rng,
    clock: Clock,
    sched: Sched,
    actors: Vec<Actor>,
    script: Script<CriLine>,
    last: i64,
    msg: Vec<u8>,
    assets: Vec<String>,
    conn: u64,
    rate: f64,
    pg_pid: u32,
    checkpoint_start: Option<i64>,
    /// Pods on this node (aws-node) or service endpoints in the cluster (kube-proxy).
    endpoints: usize,
}

fn spring_header(
    o: &mut Vec<u8>,
    c: &mut Clock,
    t: i64,
    level: &str,
    app: &str,
    thread: &str,
    logger: &str,
) {
    c.rfc3339_frac(o, t, 3);
    o.push(b' ');
    for _ in level.len()..5 {
        o.push(b' ');
    }
    o.extend_from_slice(level.as_bytes());
    o.extend_from_slice(b" 1 --- [");
    o.extend_from_slice(app.as_bytes());
    o.extend_from_slice(b"] [");
    let th = thread.as_bytes();
    let th = &th[th.len().saturating_sub(15)..];
    for _ in th.len()..15 {
        o.push(b' ');
    }
    o.extend_from_slice(th);
    o.extend_from_slice(b"] ");
    let lg = logger.as_bytes();
    let lg = &lg[..lg.len().min(40)];
    o.extend_from_slice(lg);
    for _ in lg.len()..40 {
        o.push(b' ');
    }
    o.extend_from_slice(b" : ");
}

const CART_TRACE: &str = "org.postgresql.util.PSQLException: ERROR: canceling statement due to statement timeout
\tat org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:2725)
\tat org.postgresql.core.v3.QueryExecutorImpl.processResults(QueryExecutorImpl.java:2412)
\tat org.postgresql.core.v3.QueryExecutorImpl.execute(QueryExecutorImpl.java:371)
\tat org.postgresql.jdbc.PgStatement.executeInternal(PgStatement.java:502)
\tat org.postgresql.jdbc.PgStatement.execute(PgStatement.java:419)
\tat org.postgresql.jdbc.PgPreparedStatement.executeWithFlags(PgPreparedStatement.java:194)
\tat org.postgresql.jdbc.PgPreparedStatement.executeQuery(PgPreparedStatement.java:137)
\tat com.zaxxer.hikari.pool.ProxyPreparedStatement.executeQuery(ProxyPreparedStatement.java:52)
\tat com.zaxxer.hikari.pool.HikariProxyPreparedStatement.executeQuery(HikariProxyPreparedStatement.java)
\tat org.springframework.jdbc.core.JdbcTemplate$1.doInPreparedStatement(JdbcTemplate.java:732)
\tat org.springframework.jdbc.core.JdbcTemplate.execute(JdbcTemplate.java:658)
\tat org.springframework.jdbc.core.JdbcTemplate.query(JdbcTemplate.java:723)
\tat com.example.cart.repo.CartRepository.findItems(CartRepository.java:88)
\tat com.example.cart.service.PricingService.price(PricingService.java:41)
\tat com.example.cart.web.CartController.get(CartController.java:57)
\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)
\tat java.base/java.lang.reflect.Method.invoke(Method.java:580)
\tat org.springframework.web.method.support.InvocableHandlerMethod.doInvoke(InvocableHandlerMethod.java:255)
\tat org.springframework.web.method.support.InvocableHandlerMethod.invokeForRequest(InvocableHandlerMethod.java:188)
\tat org.springframework.web.servlet.mvc.method.annotation.ServletInvocableHandlerMethod.invokeAndHandle(ServletInvocableHandlerMethod.java:118)
\tat org.springframework.web.servlet.mvc.method.annotation.RequestMappingHandlerAdapter.invokeHandlerMethod(RequestMappingHandlerAdapter.java:926)
\tat org.springframework.web.servlet.mvc.method.annotation.RequestMappingHandlerAdapter.handleInternal(RequestMappingHandlerAdapter.java:831)
\tat org.springframework.web.servlet.mvc.method.AbstractHandlerMethodAdapter.handle(AbstractHandlerMethodAdapter.java:87)
\tat org.springframework.web.servlet.DispatcherServlet.doDispatch(DispatcherServlet.java:1089)
\tat org.springframework.web.servlet.DispatcherServlet.doService(DispatcherServlet.java:979)
\tat org.springframework.web.servlet.FrameworkServlet.processRequest(FrameworkServlet.java:1014)
\tat org.springframework.web.servlet.FrameworkServlet.doGet(FrameworkServlet.java:903)
\tat jakarta.servlet.http.HttpServlet.service(HttpServlet.java:564)
\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)
\tat jakarta.servlet.http.HttpServlet.service(HttpServlet.java:658)
\tat org.apache.catalina.core.ApplicationFilterChain.internalDoFilter(ApplicationFilterChain.java:205)
\tat org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:149)
\tat org.apache.tomcat.websocket.server.WsFilter.doFilter(WsFilter.java:51)
\tat org.apache.catalina.core.ApplicationFilterChain.internalDoFilter(ApplicationFilterChain.java:174)
\tat org.apache.catalina.core.StandardWrapperValve.invoke(StandardWrapperValve.java:167)
\tat org.apache.catalina.core.StandardContextValve.invoke(StandardContextValve.java:90)
\tat org.apache.catalina.core.StandardHostValve.invoke(StandardHostValve.java:115)
\tat org.apache.catalina.valves.ErrorReportValve.invoke(ErrorReportValve.java:93)
\tat org.apache.catalina.core.StandardEngineValve.invoke(StandardEngineValve.java:74)
\tat org.apache.catalina.connector.CoyoteAdapter.service(CoyoteAdapter.java:344)
\tat org.apache.coyote.http11.Http11Processor.service(Http11Processor.java:391)
\tat org.apache.coyote.AbstractProcessorLight.process(AbstractProcessorLight.java:63)
\tat org.apache.coyote.AbstractProtocol$ConnectionHandler.process(AbstractProtocol.java:896)
\tat org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun(NioEndpoint.java:1744)
\tat org.apache.tomcat.util.net.SocketProcessorBase.run(SocketProcessorBase.java:52)
\tat org.apache.tomcat.util.threads.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1191)
\tat org.apache.tomcat.util.threads.ThreadPoolExecutor$Worker.run(ThreadPoolExecutor.java:659)
\tat org.apache.tomcat.util.threads.TaskThread$WrappingRunnable.run(TaskThread.java:63)
\tat java.base/java.lang.Thread.run(Thread.java:1583)";

const PAY_TRACE: &str = "com.example.payments.gateway.GatewayException: Stripe request failed after 3 attempts
\tat com.example.payments.gateway.StripeClient.post(StripeClient.java:131)
\tat com.example.payments.gateway.StripeClient.createPaymentIntent(StripeClient.java:64)
\tat com.example.payments.service.PaymentService.authorize(PaymentService.java:88)
\tat com.example.payments.api.PaymentController.create(PaymentController.java:45)
\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)
\tat java.base/java.lang.reflect.Method.invoke(Method.java:580)
\tat org.springframework.web.method.support.InvocableHandlerMethod.doInvoke(InvocableHandlerMethod.java:255)
\tat org.springframework.web.method.support.InvocableHandlerMethod.invokeForRequest(InvocableHandlerMethod.java:188)
\tat org.springframework.web.servlet.mvc.method.annotation.ServletInvocableHandlerMethod.invokeAndHandle(ServletInvocableHandlerMethod.java:118)
\tat org.springframework.web.servlet.mvc.method.annotation.RequestMappingHandlerAdapter.invokeHandlerMethod(RequestMappingHandlerAdapter.java:926)
\tat org.springframework.web.servlet.DispatcherServlet.doDispatch(DispatcherServlet.java:1089)
\tat org.springframework.web.servlet.FrameworkServlet.doPost(FrameworkServlet.java:914)
\tat jakarta.servlet.http.HttpServlet.service(HttpServlet.java:590)
\tat org.apache.catalina.core.ApplicationFilterChain.internalDoFilter(ApplicationFilterChain.java:205)
\tat org.apache.catalina.core.StandardWrapperValve.invoke(StandardWrapperValve.java:167)
\tat org.apache.coyote.http11.Http11Processor.service(Http11Processor.java:391)
\tat org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun(NioEndpoint.java:1744)
\tat java.base/java.lang.Thread.run(Thread.java:1583)
Caused by: java.net.SocketTimeoutException: timeout
\tat okhttp3.internal.http2.Http2Stream$StreamTimeout.newTimeoutException(Http2Stream.kt:675)
\tat okhttp3.internal.http2.Http2Stream$StreamTimeout.exitAndThrowIfTimedOut(Http2Stream.kt:684)
\tat okhttp3.internal.http2.Http2Stream.takeHeaders(Http2Stream.kt:143)
\tat okhttp3.internal.http2.Http2ExchangeCodec.readResponseHeaders(Http2ExchangeCodec.kt:97)
\tat okhttp3.internal.connection.Exchange.readResponseHeaders(Exchange.kt:110)
\tat okhttp3.internal.http.CallServerInterceptor.intercept(CallServerInterceptor.kt:93)
\tat okhttp3.internal.http.RealInterceptorChain.proceed(RealInterceptorChain.kt:109)
\tat okhttp3.internal.connection.ConnectInterceptor.intercept(ConnectInterceptor.kt:34)
\tat okhttp3.internal.http.RealInterceptorChain.proceed(RealInterceptorChain.kt:109)
\tat okhttp3.internal.http.BridgeInterceptor.intercept(BridgeInterceptor.kt:83)
\tat okhttp3.internal.http.RealInterceptorChain.proceed(RealInterceptorChain.kt:109)
\tat okhttp3.internal.connection.RealCall.getResponseWithInterceptorChain$okhttp(RealCall.kt:201)
\tat okhttp3.internal.connection.RealCall.execute(RealCall.kt:154)
\tat com.example.payments.gateway.StripeClient.post(StripeClient.java:112)
\t... 17 common frames omitted";

const BANNER: [&str; 8] = [
    "",
    "  .   ____          _            __ _ _",
    " /\\\\ / ___'_ __ _ _(_)_ __  __ _ \\ \\ \\ \\",
    "( ( )\\___ | '_ | '_| | '_ \\/ _` | \\ \\ \\ \\",
    " \\\\/  ___)| |_)| | | | | || (_| |  ) ) ) )",
    "  '  |____| .__|_| |_|_| |_\\__, | / / / /",
    " =========|_|==============|___/=/_/_/_/",
    " :: Spring Boot ::                (v3.2.5)",
];

impl CriStream {
    /// The log of container `container` of pod `pod`.
    pub fn new(topo: Arc<Topo>, pod: usize, container: usize) -> CriStream {
        let p = &topo.pods[pod];
        let mut r = rng::keyed(
            topo.seed,
            &format!("cri-{}-{}", p.name, p.containers[container]),
        );
        let begin = p.start.max(topo.t0);
        let quiet = if p.stopped_in_window { 6 * SEC } else { 0 };
        let mut sched = Sched::new(p.end.min(topo.t1) - quiet);
        let mut actors = Vec::new();
        let mut add = |sched: &mut Sched, r: &mut Rng, a: Actor, within: i64| {
            let lead = if p.started_in_window { 12 * SEC } else { 0 };
            sched.at(
                begin + lead + rng::range(r, 0, within.max(1) as u64) as i64,
                actors.len() as u32,
            );
            actors.push(a);
        };
        let mut items: Vec<(i64, CriLine)> = Vec::new();
        let mut clients = Vec::new();
        let mut clock = Clock::default();
        let rate;
        match p.app {
            App::Nginx => {
                rate = 5.0 * (0.8 + 0.4 * rng::unit(&mut r));
                add(&mut sched, &mut r, Actor::NginxRequest, SEC);
                add(&mut sched, &mut r, Actor::NginxProbe, 10 * SEC);
                add(&mut sched, &mut r, Actor::NginxProbe, 10 * SEC);
                for i in 0..topo.albs.len() {
                    add(&mut sched, &mut r, Actor::AlbCheck(i), 15 * SEC);
                }
                add(&mut sched, &mut r, Actor::NginxError, 600 * SEC);
                add(&mut sched, &mut r, Actor::NginxScan, 120 * SEC);
            }
            App::Cart | App::Payments => {
                rate = if p.app == App::Cart { 2.0 } else { 1.5 } * (0.8 + 0.4 * rng::unit(&mut r));
                add(&mut sched, &mut r, Actor::JavaLog, SEC);
                add(&mut sched, &mut r, Actor::JavaTrace, 600 * SEC);
                if p.app == App::Payments {
                    add(&mut sched, &mut r, Actor::JavaPayload, 900 * SEC);
                }
                java_script(&topo, p, &mut r, &mut clock, &mut items);
            }
            App::Postgres => {
                rate = 0.0;
                let n_pg = topo
                    .pods
                    .iter()
                    .filter(|q| q.app == App::Postgres)
                    .count()
                    .max(1);
                let my = p.replica;
                let mut k = 0;
                for (i, q) in topo.pods.iter().enumerate() {
                    if matches!(q.app, App::Cart | App::Payments) {
                        if k % n_pg == my {
                            clients.push(i);
                        }
                        k += 1;
                    }
                }
                for &c in &clients {
                    add(&mut sched, &mut r, Actor::PgReconnect(c), 180 * SEC);
                }
                add(&mut sched, &mut r, Actor::PgCheckpoint, 300 * SEC);
                add(&mut sched, &mut r, Actor::PgSlow, 120 * SEC);
                add(&mut sched, &mut r, Actor::PgError, 400 * SEC);
                add(&mut sched, &mut r, Actor::PgVacuum, 600 * SEC);
                pg_script(&topo, p, &clients, &mut r, &mut clock, &mut items);
            }
            App::CoreDns => {
                rate = 1.3 * (0.85 + 0.3 * rng::unit(&mut r));
                add(&mut sched, &mut r, Actor::DnsQuery, SEC);
                add(&mut sched, &mut r, Actor::DnsError, 900 * SEC);
            }
            App::AwsNode => {
                rate = 0.0;
                add(&mut sched, &mut r, Actor::AwsNode, 60 * SEC);
            }
            App::KubeProxy => {
                rate = 0.0;
                add(&mut sched, &mut r, Actor::KubeProxy, 30 * SEC);
            }
            App::Debugger => {
                rate = 0.0;
                debugger_script(&topo, &mut r, &mut items);
            }
        }
        items.retain(|(t, _)| *t >= topo.t0 && *t < topo.t1);
        let endpoints = match p.app {
            App::AwsNode => topo
                .pods
                .iter()
                .filter(|q| q.node == p.node && q.ip != p.ip && !q.stopped_in_window)
                .count(),
            App::KubeProxy => topo
                .pods
                .iter()
                .filter(|q| {
                    !q.stopped_in_window
                        && matches!(
                            q.app,
                            App::Nginx | App::Cart | App::Payments | App::Postgres | App::CoreDns
                        )
                })
                .count(),
            _ => 0,
        };
        let script = Script::new(items);
        if let Some(t) = script.next_time() {
            sched.at(t, SCRIPT);
        }
        let pg_pid = 28_000 + rng::range(&mut r, 0, 4000) as u32;
        let assets = [
            "js/main",
            "js/vendor",
            "js/runtime",
            "css/app",
            "css/vendor",
            "js/checkout",
        ]
        .iter()
        .map(|a| {
            let ext = if a.starts_with("css") { "css" } else { "js" };
            format!("/static/{a}.{}.{ext}", rng::hex(&mut r, 8))
        })
        .collect();
        CriStream {
            topo,
            pod,
            r,
            clock,
            sched,
            actors,
            script,
            last: i64::MIN,
            msg: Vec::with_capacity(1024),
            assets,
            conn: 100_000,
            rate,
            pg_pid,
            checkpoint_start: None,
            endpoints,
        }
    }

    /// Writes the CRI header for a line at `t` (kept monotonic) and returns the time used.
    #[inline]
    fn hdr(&mut self, out: &mut Vec<u8>, t: i64, stderr: bool, partial: bool) -> i64 {
        let t = t.max(self.last);
        self.last = t;
        self.clock.rfc3339_nano(out, t);
        out.extend_from_slice(match (stderr, partial) {
            (false, false) => b" stdout F ",
            (false, true) => b" stdout P ",
            (true, false) => b" stderr F ",
            (true, true) => b" stderr P ",
        });
        t
    }

    /// Writes a whole message, split into 16 KiB partials when longer.
    fn emit(&mut self, out: &mut Vec<u8>, t: i64, stderr: bool, msg: &[u8]) {
        let mut rest = msg;
        let mut t = t;
        while rest.len() > MAX_LINE {
            self.hdr(out, t, stderr, true);
            out.extend_from_slice(&rest[..MAX_LINE]);
            out.push(b'\n');
            rest = &rest[MAX_LINE..];
            t += 3 * US;
        }
        self.hdr(out, t, stderr, false);
        out.extend_from_slice(rest);
        out.push(b'\n');
    }

    fn fire(&mut self, t: i64, a: u32, out: &mut Vec<u8>) {
        if a == SCRIPT {
            if let Some(l) = self.script.take() {
                let (stderr, msg) = (l.stderr, l.msg.clone());
                self.emit(out, t, stderr, msg.as_bytes());
            }
            if let Some(nt) = self.script.next_time() {
                self.sched.at(nt, SCRIPT);
            }
            return;
        }
        let topo = Arc::clone(&self.topo);
        let p = &topo.pods[self.pod];
        let next = match self.actors[a as usize] {
            Actor::NginxRequest => {
                self.nginx_request(out, t, &topo);
                t + rng::exp_ns(&mut self.r, self.rate)
            }
            Actor::NginxProbe => {
                let ip = topo.nodes[p.node].ip;
                self.access(
                    out,
                    t,
                    ip,
                    b"GET",
                    b"/healthz",
                    200,
                    2,
                    b"-",
                    b"kube-probe/1.29+",
                );
                t + rng::jitter(&mut self.r, 10 * SEC, 0.002)
            }
            Actor::AlbCheck(i) => {
                let ip = topo.albs[i].ip;
                self.access(
                    out,
                    t,
                    ip,
                    b"GET",
                    b"/healthz",
                    200,
                    2,
                    b"-",
                    b"ELB-HealthChecker/2.0",
                );
                t + rng::jitter(&mut self.r, 15 * SEC, 0.002)
            }
            Actor::NginxError => {
                self.nginx_error(out, t, &topo);
                t + rng::exp_ns(&mut self.r, 1.0 / 420.0)
            }
            Actor::NginxScan => {
                let r = &mut self.r;
                let ip = topo.scanners[rng::range(r, 0, topo.scanners.len() as u64) as usize];
                let ua = *rng::pick(r, &SCAN_UAS);
                let n = rng::range(r, 2, 7);
                let mut c = t;
                for _ in 0..n {
                    let (path, status) = *rng::pick(&mut self.r, &SCAN_PATHS);
                    let bytes = if status == 404 { 153 } else { 157 };
                    self.access(
                        out,
                        c,
                        ip,
                        b"GET",
                        path.as_bytes(),
                        status,
                        bytes,
                        b"-",
                        ua.as_bytes(),
                    );
                    c += rng::range(&mut self.r, 30, 900) as i64 * MS;
                }
                t + rng::exp_ns(&mut self.r, 1.0 / 150.0)
            }
            Actor::JavaLog => {
                self.java_log(out, t, p);
                t + rng::exp_ns(&mut self.r, self.rate)
            }
            Actor::JavaTrace => {
                self.java_trace(out, t, p);
                t + rng::exp_ns(&mut self.r, 1.0 / 300.0)
            }
            Actor::JavaPayload => {
                self.java_payload(out, t, p);
                t + rng::exp_ns(&mut self.r, 1.0 / 700.0)
            }
            Actor::PgReconnect(c) => {
                let q = &topo.pods[c];
                if q.alive(t) && q.alive(t - 60 * SEC) {
                    let db = if q.app == App::Cart {
                        "cart"
                    } else {
                        "payments"
                    };
                    let old = rng::range(&mut self.r, 32768, 60999);
                    let new = rng::range(&mut self.r, 32768, 60999);
                    let ms = rng::range(&mut self.r, 0, 999);
                    let secs = rng::range(&mut self.r, 1, 59);
                    let msg = format!("disconnection: session time: 0:30:{secs:02}.{ms:03} user={db} database={db} host={} port={old}", q.ip_s);
                    self.pg(out, t, "LOG", &msg);
                    let msg = format!("connection received: host={} port={new}", q.ip_s);
                    self.pg_new(out, t + 3 * MS, "LOG", &msg);
                    let msg = format!("connection authorized: user={db} database={db} application_name=PostgreSQL JDBC Driver");
                    self.pg(out, t + 5 * MS, "LOG", &msg);
                }
                t + rng::exp_ns(&mut self.r, 1.0 / 180.0)
            }
            Actor::PgCheckpoint => match self.checkpoint_start.take() {
                None => {
                    self.pg_at(out, t, 61, "LOG", "checkpoint starting: time");
                    self.checkpoint_start = Some(t);
                    t + rng::range(&mut self.r, 25_000, 29_900) as i64 * MS
                }
                Some(s) => {
                    let r = &mut self.r;
                    let bufs = rng::range(r, 40, 900);
                    let write = (t - s) / MS - rng::range(r, 5, 40) as i64;
                    let msg = format!(
                            "checkpoint complete: wrote {bufs} buffers ({}.{}%); 0 WAL file(s) added, 0 removed, {} recycled; write={}.{:03} s, sync=0.{:03} s, total={}.{:03} s; sync files={}, longest=0.{:03} s, average=0.{:03} s; distance={} kB, estimate={} kB; lsn=0/{:X}, redo lsn=0/{:X}",
                            bufs / 128, bufs % 10, rng::range(r, 0, 3), write / 1000, write % 1000,
                            rng::range(r, 1, 30), (t - s) / SEC, ((t - s) / MS) % 1000,
                            rng::range(r, 10, 90), rng::range(r, 1, 9), rng::range(r, 1, 4),
                            rng::range(r, 500, 9000), rng::range(r, 9000, 12000),
                            rng::range(r, 0x5A00000, 0x7F00000), rng::range(r, 0x5A00000, 0x7F00000)
                        );
                    self.pg_at(out, t, 61, "LOG", &msg);
                    s + 300 * SEC
                }
            },
            Actor::PgSlow => {
                let r = &mut self.r;
                let (db, stmt) = *rng::pick(r, &[
                    ("payments", "SELECT p.id, p.amount, p.currency, p.status, p.created_at FROM payments p WHERE p.customer_id = $1 ORDER BY p.created_at DESC LIMIT 50"),
                    ("payments", "UPDATE payment_events SET processed_at = now() WHERE id = ANY($1)"),
                    ("cart", "SELECT ci.sku, ci.qty, pr.price FROM cart_items ci JOIN prices pr ON pr.sku = ci.sku WHERE ci.cart_id = $1"),
                    ("cart", "DELETE FROM carts WHERE updated_at < now() - interval '30 days' AND checked_out = false"),
                ]);
                let ms = rng::range(r, 1_000_000, 9_000_000);
                let param = rng::range(r, 10_000, 99_999);
                let msg = format!(
                    "duration: {}.{:03} ms  execute <unnamed>: {stmt}",
                    ms / 1000,
                    ms % 1000
                );
                let pid = self.pg_pid + rng::range(&mut self.r, 0, 40) as u32;
                self.pg_at(out, t, pid, "LOG", &msg);
                if stmt.contains("$1") {
                    let detail = if stmt.contains("ANY") {
                        format!("parameters: $1 = '{{{param},{}}}'", param + 7)
                    } else {
                        format!("parameters: $1 = '{param}'")
                    };
                    self.pg_at(out, t + 20 * US, pid, "DETAIL", &detail);
                }
                let _ = db;
                t + rng::exp_ns(&mut self.r, 1.0 / 120.0)
            }
            Actor::PgError => {
                let pid = self.pg_pid + rng::range(&mut self.r, 0, 40) as u32;
                let key = rng::uuid(&mut self.r);
                self.pg_at(out, t, pid, "ERROR", "duplicate key value violates unique constraint \"payments_idempotency_key_key\"");
                self.pg_at(
                    out,
                    t + 10 * US,
                    pid,
                    "DETAIL",
                    &format!("Key (idempotency_key)=({key}) already exists."),
                );
                self.pg_at(out, t + 20 * US, pid, "STATEMENT", "INSERT INTO payments (id, customer_id, amount, currency, status, idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)");
                t + rng::exp_ns(&mut self.r, 1.0 / 400.0)
            }
            Actor::PgVacuum => {
                let r = &mut self.r;
                let pid = 9000 + rng::range(r, 0, 5000) as u32;
                let table = *rng::pick(
                    r,
                    &[
                        "payments.public.payment_events",
                        "payments.public.payments",
                        "cart.public.cart_items",
                        "cart.public.carts",
                    ],
                );
                let pages = rng::range(r, 800, 20_000);
                let scanned = rng::range(r, 10, 300);
                let lines = [
                    format!("automatic vacuum of table \"{table}\": index scans: 1"),
                    format!("\tpages: 0 removed, {pages} remain, {scanned} scanned ({}.{:02}% of total)", scanned * 100 / pages, rng::range(r, 0, 99)),
                    format!("\ttuples: {} removed, {} remain, 0 are dead but not yet removable", rng::range(r, 50, 3000), rng::range(r, 10_000, 900_000)),
                    format!("\tremovable cutoff: {}, which was {} XIDs old when operation ended", rng::range(r, 1_000_000, 9_000_000), rng::range(r, 0, 20)),
                    format!("\tindex scan needed: {} pages from table ({}.{:02}% of total) had {} dead item identifiers removed", scanned / 2, scanned * 50 / pages, rng::range(r, 0, 99), rng::range(r, 50, 3000)),
                    format!("\tavg read rate: 0.000 MB/s, avg write rate: {}.{:03} MB/s", rng::range(r, 0, 9), rng::range(r, 0, 999)),
                    format!("\tbuffer usage: {} hits, 0 misses, {} dirtied", rng::range(r, 100, 5000), rng::range(r, 5, 200)),
                    format!("\tWAL usage: {} records, {} full page images, {} bytes", rng::range(r, 50, 4000), rng::range(r, 0, 80), rng::range(r, 10_000, 900_000)),
                    format!("\tsystem usage: CPU: user: 0.0{} s, system: 0.00 s, elapsed: 0.{:02} s", rng::range(r, 0, 9), rng::range(r, 3, 99)),
                ];
                self.pg_at(out, t, pid, "LOG", &lines[0]);
                for l in &lines[1..] {
                    self.hdr(out, t, true, false);
                    out.extend_from_slice(l.as_bytes());
                    out.push(b'\n');
                }
                t + rng::exp_ns(&mut self.r, 1.0 / 600.0)
            }
            Actor::DnsQuery => {
                self.dns(out, t, &topo);
                t + rng::exp_ns(&mut self.r, self.rate)
            }
            Actor::DnsError => {
                let r = &mut self.r;
                let name = *rng::pick(
                    r,
                    &[
                        "api.stripe.com.",
                        "sts.us-east-1.amazonaws.com.",
                        "hooks.slack.com.",
                    ],
                );
                let msg = format!(
                    "[ERROR] plugin/errors: 2 {name} AAAA: read udp {}:{}->10.0.0.2:53: i/o timeout",
                    p.ip_s,
                    rng::range(r, 32768, 60999)
                );
                self.emit(out, t, false, msg.as_bytes());
                t + rng::exp_ns(&mut self.r, 1.0 / 900.0)
            }
            Actor::AwsNode => {
                let r = &mut self.r;
                let total = rng::range(r, 14, 29);
                let used = self.endpoints + rng::range(r, 0, 2) as usize;
                let msgs = [
                    ("ipamd/ipamd.go:1435", format!("IP pool stats for network card 0: Total IPs/Prefixes = {total}/0, AssignedIPs/CidrPool = {used}/0")),
                    ("ipamd/ipamd.go:701", "Successfully Reconciled ENI/IP pool".to_string()),
                    ("ipamd/ipamd.go:1518", format!("Reconcile existing ENI {} IP pool", topo.nodes[p.node].eni)),
                ];
                let (caller, msg) = &msgs[rng::range(r, 0, 3) as usize];
                self.msg.clear();
                self.msg.extend_from_slice(b"{\"level\":\"info\",\"ts\":\"");
                let tt = t.max(self.last);
                self.clock.rfc3339_frac(&mut self.msg, tt, 3);
                self.msg.extend_from_slice(b"\",\"caller\":\"");
                self.msg.extend_from_slice(caller.as_bytes());
                self.msg.extend_from_slice(b"\",\"msg\":\"");
                self.msg.extend_from_slice(msg.as_bytes());
                self.msg.extend_from_slice(b"\"}");
                let m = std::mem::take(&mut self.msg);
                self.emit(out, tt, false, &m);
                self.msg = m;
                t + rng::jitter(&mut self.r, 75 * SEC, 0.2)
            }
            Actor::KubeProxy => {
                let tt = t.max(self.last);
                let n_svc = 9 + topo.scale as u64;
                let n_ep = self.endpoints as u64 * 2;
                let e = rng::range(&mut self.r, 8_000, 60_000);
                let lines = [
                    ("proxier.go:799", "\"Syncing iptables rules\"".to_string()),
                    ("proxier.go:1508", format!("\"Reloading service iptables data\" numServices={n_svc} numEndpoints={n_ep} numFilterChains=6 numFilterRules=4 numNATChains={} numNATRules={}", n_ep + 12, n_ep * 3 + 20)),
                    ("proxier.go:793", format!("\"SyncProxyRules complete\" elapsed=\"{}.{}ms\"", e / 1000, (e % 1000) / 100)),
                ];
                for (k, (loc, m)) in lines.iter().enumerate() {
                    let lt = tt + k as i64 * (e as i64 * US / 2);
                    self.msg.clear();
                    self.clock.klog(&mut self.msg, lt, b'I');
                    self.msg.extend_from_slice(b"       1 ");
                    self.msg.extend_from_slice(loc.as_bytes());
                    self.msg.extend_from_slice(b"] ");
                    self.msg.extend_from_slice(m.as_bytes());
                    let msg = std::mem::take(&mut self.msg);
                    self.emit(out, lt, true, &msg);
                    self.msg = msg;
                }
                t + rng::jitter(&mut self.r, 30 * SEC, 0.05)
            }
        };
        self.sched.at(next, a);
    }

    #[allow(clippy::too_many_arguments)]
    fn access(
        &mut self,
        out: &mut Vec<u8>,
        t: i64,
        ip: u32,
        method: &[u8],
        path: &[u8],
        status: u16,
        bytes: u64,
        referer: &[u8],
        ua: &[u8],
    ) {
        let t = self.hdr(out, t, false, false);
        fmt::ip(out, ip);
        out.extend_from_slice(b" - - [");
        self.clock.nginx_local(out, t);
        out.extend_from_slice(b"] \"");
        out.extend_from_slice(method);
        out.push(b' ');
        out.extend_from_slice(path);
        out.extend_from_slice(b" HTTP/1.1\" ");
        fmt::num(out, status as u64);
        out.push(b' ');
        fmt::num(out, bytes);
        out.extend_from_slice(b" \"");
        out.extend_from_slice(referer);
        out.extend_from_slice(b"\" \"");
        out.extend_from_slice(ua);
        out.extend_from_slice(b"\"\n");
    }

    fn nginx_request(&mut self, out: &mut Vec<u8>, t: i64, topo: &Topo) {
        let r = &mut self.r;
        let ci = rng::zipfish(r, topo.clients.len());
        let ip = topo.clients[ci];
        let ua_i = (ip.wrapping_mul(2_654_435_761) >> 16) as usize % UAS.len();
        let ua = UAS[ua_i];
        let bot = ua.contains("bot");
        let mut path = std::mem::take(&mut self.msg);
        path.clear();
        let kind = *rng::weighted(
            r,
            &[
                (18u32, 0u8),
                (22, 1),
                (25, 2),
                (12, 3),
                (10, 4),
                (6, 5),
                (3, 6),
                (2, 7),
                (1, 8),
                (1, 9),
            ],
        );
        let mut method: &[u8] = b"GET";
        let mut referer: &[u8] = b"https://shop.example.com/";
        let (status, bytes): (u16, u64);
        match kind {
            0 => {
                if rng::chance(r, 0.4) {
                    path.push(b'/');
                    referer = if rng::chance(r, 0.5) {
                        b"https://www.google.com/"
                    } else {
                        b"-"
                    };
                } else {
                    path.extend_from_slice(b"/category/");
                    path.extend_from_slice(rng::pick(r, &CATEGORIES).as_bytes());
                    if rng::chance(r, 0.3) {
                        path.extend_from_slice(b"?page=");
                        fmt::num(&mut path, rng::range(r, 2, 9));
                    }
                }
                status = 200;
                bytes = rng::skewed(r, 14_000.0, 0.3) as u64;
            }
            1 => {
                path.extend_from_slice(b"/products/");
                fmt::num(&mut path, rng::range(r, 1000, 9999));
                let x = rng::unit(r);
                (status, bytes) = if x < 0.02 {
                    (404, 1_847)
                } else if x < 0.03 {
                    path.push(b'/');
                    (301, 169)
                } else {
                    (200, rng::skewed(r, 22_000.0, 0.25) as u64)
                };
                if rng::chance(r, 0.3) {
                    referer = b"https://www.google.com/";
                }
            }
            2 => {
                let a = rng::range(r, 0, self.assets.len() as u64 + 1) as usize;
                if a == self.assets.len() {
                    path.extend_from_slice(b"/favicon.ico");
                } else {
                    path.extend_from_slice(self.assets[a].as_bytes());
                }
                (status, bytes) = if rng::chance(r, 0.35) {
                    (304, 0)
                } else {
                    (200, rng::skewed(r, 60_000.0, 0.9) as u64)
                };
            }
            3 => {
                path.extend_from_slice(b"/images/products/");
                fmt::num(&mut path, rng::range(r, 1000, 9999));
                path.push(b'-');
                fmt::num(&mut path, rng::range(r, 1, 6));
                path.extend_from_slice(b".webp");
                (status, bytes) = if rng::chance(r, 0.25) {
                    (304, 0)
                } else {
                    (200, rng::skewed(r, 45_000.0, 0.6) as u64)
                };
            }
            4 => {
                path.extend_from_slice(b"/api/products?category=");
                path.extend_from_slice(rng::pick(r, &CATEGORIES).as_bytes());
                path.extend_from_slice(b"&page=");
                fmt::num(&mut path, rng::range(r, 1, 6));
                status = 200;
                bytes = rng::skewed(r, 5_200.0, 0.4) as u64;
            }
            5 => {
                path.extend_from_slice(b"/api/cart");
                status = if rng::chance(r, 0.01) { 502 } else { 200 };
                bytes = if status == 200 {
                    rng::range(r, 200, 2_400)
                } else {
                    157
                };
            }
            6 => {
                method = b"POST";
                path.extend_from_slice(b"/api/cart/items");
                let x = rng::unit(r);
                (status, bytes) = if x < 0.02 {
                    (400, 112)
                } else if x < 0.025 {
                    (502, 157)
                } else {
                    (201, rng::range(r, 280, 420))
                };
            }
            7 => {
                path.extend_from_slice(b"/api/search?q=");
                path.extend_from_slice(rng::pick(r, &SEARCHES).as_bytes());
                status = 200;
                bytes = rng::skewed(r, 7_000.0, 0.5) as u64;
            }
            8 => {
                method = b"POST";
                path.extend_from_slice(b"/api/checkout");
                referer = b"https://shop.example.com/checkout";
                let x = rng::unit(r);
                (status, bytes) = if x < 0.05 {
                    (402, 96)
                } else if x < 0.06 {
                    (502, 157)
                } else if x < 0.065 {
                    (504, 167)
                } else {
                    (200, rng::range(r, 500, 800))
                };
            }
            _ => {
                path.extend_from_slice(if bot { b"/robots.txt" } else { b"/sitemap.xml" });
                referer = b"-";
                status = 200;
                bytes = if bot { 68 } else { 24_311 };
            }
        }
        let (status, bytes) = if rng::chance(&mut self.r, 0.002) {
            (499, 0)
        } else {
            (status, bytes)
        };
        self.access(
            out,
            t,
            ip,
            method,
            &path,
            status,
            bytes,
            referer,
            ua.as_bytes(),
        );
        self.msg = path;
    }

    fn nginx_error(&mut self, out: &mut Vec<u8>, t: i64, topo: &Topo) {
        let r = &mut self.r;
        let client = fmt::ip_string(topo.clients[rng::zipfish(r, topo.clients.len())]);
        self.conn += rng::range(r, 100, 5000);
        let (level, msg) = match rng::range(r, 0, 3) {
            0 => ("error", format!("upstream timed out (110: Connection timed out) while reading response header from upstream, client: {client}, server: shop.example.com, request: \"POST /api/checkout HTTP/1.1\", upstream: \"http://172.20.{}.{}:8080/api/checkout\", host: \"shop.example.com\"", rng::range(r, 0, 255), rng::range(r, 1, 254))),
            1 => ("error", format!("connect() failed (111: Connection refused) while connecting to upstream, client: {client}, server: shop.example.com, request: \"GET /api/cart HTTP/1.1\", upstream: \"http://172.20.{}.{}:8080/api/cart\", host: \"shop.example.com\"", rng::range(r, 0, 255), rng::range(r, 1, 254))),
            _ => ("warn", format!("an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/{}/{:02}/00000{} while reading upstream, client: {client}, server: shop.example.com, request: \"GET /api/products?category=outdoor&page=1 HTTP/1.1\", host: \"shop.example.com\"", rng::range(r, 1, 9), rng::range(r, 0, 99), rng::range(r, 10000, 99999))),
        };
        let t = self.hdr(out, t, true, false);
        self.clock.nginx_error(out, t);
        out.extend_from_slice(b" [");
        out.extend_from_slice(level.as_bytes());
        out.extend_from_slice(b"] 29#29: *");
        fmt::num(out, self.conn);
        out.push(b' ');
        out.extend_from_slice(msg.as_bytes());
        out.push(b'\n');
    }

    #[allow(clippy::too_many_arguments)]
    fn java_line(
        &mut self,
        out: &mut Vec<u8>,
        t: i64,
        p: &Pod,
        level: &str,
        thread: &str,
        logger: &str,
        msg: &str,
    ) {
        let app = p.containers[0];
        let t = self.hdr(out, t, false, false);
        spring_header(out, &mut self.clock, t, level, app, thread, logger);
        out.extend_from_slice(msg.as_bytes());
        out.push(b'\n');
    }

    fn java_log(&mut self, out: &mut Vec<u8>, t: i64, p: &Pod) {
        let r = &mut self.r;
        let thread = format!("nio-8080-exec-{}", rng::range(r, 1, 41));
        let (level, logger, msg) = if p.app == App::Cart {
            let cart = rng::uuid(r);
            let sku = rng::range(r, 1000, 9999);
            match *rng::weighted(r, &[(30u32, 0u8), (30, 1), (8, 2), (6, 3), (2, 4), (1, 5)]) {
                0 => ("INFO", "c.e.cart.web.CartController", format!("Added item sku=SKU-{sku} qty={} to cart {cart}", rng::range(r, 1, 4))),
                1 => ("INFO", "c.e.cart.service.PricingService", format!("Cart {cart} priced: {} items, subtotal={}.{:02} USD", rng::range(r, 1, 9), rng::range(r, 9, 600), rng::range(r, 0, 99))),
                2 => ("INFO", "c.e.cart.web.CartController", format!("Removed item sku=SKU-{sku} from cart {cart}")),
                3 => ("INFO", "c.e.cart.service.CheckoutService", format!("Checkout started for cart {cart}; forwarding to payments-api")),
                4 => ("WARN", "c.e.c.client.InventoryClient", format!("Inventory lookup for SKU-{sku} took {} ms (threshold 500 ms)", rng::range(r, 500, 2500))),
                _ => ("WARN", "com.zaxxer.hikari.pool.HikariPool", "HikariPool-1 - Thread starvation or clock leap detected (housekeeper delta=1m2s345ms).".to_string()),
            }
        } else {
            let pi = format!("pi_{}", rng::alnum(r, 24));
            match *rng::weighted(r, &[(30u32, 0u8), (30, 1), (15, 2), (4, 3), (2, 4)]) {
                0 => ("INFO", "c.e.payments.api.PaymentController", format!("Payment {pi} authorized: amount={}.{:02} currency=USD customer=cus_{} card=****{:04}", rng::range(r, 5, 900), rng::range(r, 0, 99), rng::alnum(r, 14), rng::range(r, 0, 9999))),
                1 => ("INFO", "c.e.payments.gateway.StripeClient", format!("POST https://api.stripe.com/v1/payment_intents -> 200 in {} ms", rng::range(r, 120, 900))),
                2 => ("INFO", "c.e.p.webhook.WebhookHandler", format!("Received webhook evt_{} type={}", rng::alnum(r, 24), rng::pick(r, &["payment_intent.succeeded", "charge.succeeded", "payment_intent.created", "charge.refunded"]))),
                3 => ("WARN", "c.e.payments.api.PaymentController", format!("Payment {pi} declined: card_declined ({})", rng::pick(r, &["insufficient_funds", "do_not_honor", "expired_card"]))),
                _ => ("INFO", "c.e.p.service.IdempotencyService", format!("Idempotency key {} replayed; returning stored response", rng::uuid(r))),
            }
        };
        self.java_line(out, t, p, level, &thread, logger, &msg);
    }

    fn java_trace(&mut self, out: &mut Vec<u8>, t: i64, p: &Pod) {
        let thread = format!("nio-8080-exec-{}", rng::range(&mut self.r, 1, 41));
        let (logger, msg, trace) = if p.app == App::Cart {
            ("o.a.c.c.C.[.[.[/].[dispatcherServlet]", "Servlet.service() for servlet [dispatcherServlet] in context with path [] threw exception [Request processing failed: org.springframework.dao.QueryTimeoutException: PreparedStatementCallback; SQL [SELECT ci.sku, ci.qty, pr.price FROM cart_items ci JOIN prices pr ON pr.sku = ci.sku WHERE ci.cart_id = ?]; ERROR: canceling statement due to statement timeout] with root cause".to_string(), CART_TRACE)
        } else {
            (
                "c.e.payments.api.PaymentController",
                format!(
                    "Payment pi_{} failed; returning 502",
                    rng::alnum(&mut self.r, 24)
                ),
                PAY_TRACE,
            )
        };
        self.java_line(out, t, p, "ERROR", &thread, logger, &msg);
        let mut lt = t;
        for line in trace.lines() {
            lt += rng::range(&mut self.r, 1, 4) as i64 * US;
            self.hdr(out, lt, false, false);
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }

    fn java_payload(&mut self, out: &mut Vec<u8>, t: i64, p: &Pod) {
        let r = &mut self.r;
        let mut m = Vec::with_capacity(40_000);
        let tt = t.max(self.last);
        spring_header(
            &mut m,
            &mut self.clock,
            tt,
            "DEBUG",
            p.containers[0],
            "nio-8080-exec-7",
            "c.e.p.webhook.WebhookHandler",
        );
        m.extend_from_slice(b"Webhook payload: {\"id\":\"evt_");
        m.extend_from_slice(rng::alnum(r, 24).as_bytes());
        m.extend_from_slice(b"\",\"object\":\"event\",\"type\":\"invoice.finalized\",\"data\":{\"object\":{\"object\":\"invoice\",\"lines\":{\"data\":[");
        let n = rng::range(r, 90, 260);
        for i in 0..n {
            if i > 0 {
                m.push(b',');
            }
            m.extend_from_slice(b"{\"id\":\"il_");
            m.extend_from_slice(rng::alnum(r, 24).as_bytes());
            m.extend_from_slice(b"\",\"amount\":");
            fmt::num(&mut m, rng::range(r, 100, 90_000));
            m.extend_from_slice(b",\"currency\":\"usd\",\"description\":\"SKU-");
            fmt::num(&mut m, rng::range(r, 1000, 9999));
            m.extend_from_slice(b" x ");
            fmt::num(&mut m, rng::range(r, 1, 5));
            m.extend_from_slice(b"\",\"quantity\":");
            fmt::num(&mut m, rng::range(r, 1, 5));
            m.push(b'}');
        }
        m.extend_from_slice(b"]}}}}");
        self.emit(out, tt, false, &m);
    }

    fn pg_at(&mut self, out: &mut Vec<u8>, t: i64, pid: u32, sev: &str, msg: &str) {
        let t = self.hdr(out, t, true, false);
        self.clock.postgres(out, t);
        out.extend_from_slice(b" [");
        fmt::num(out, pid as u64);
        out.extend_from_slice(b"] ");
        out.extend_from_slice(sev.as_bytes());
        out.extend_from_slice(b":  ");
        out.extend_from_slice(msg.as_bytes());
        out.push(b'\n');
    }

    fn pg(&mut self, out: &mut Vec<u8>, t: i64, sev: &str, msg: &str) {
        let pid = self.pg_pid;
        self.pg_at(out, t, pid, sev, msg);
    }

    fn pg_new(&mut self, out: &mut Vec<u8>, t: i64, sev: &str, msg: &str) {
        self.pg_pid += rng::range(&mut self.r, 1, 30) as u32;
        self.pg(out, t, sev, msg);
    }

    fn dns(&mut self, out: &mut Vec<u8>, t: i64, topo: &Topo) {
        let r = &mut self.r;
        let q = loop {
            let i = rng::pick(r, &topo.pods);
            if matches!(i.app, App::Cart | App::Payments | App::Nginx) && i.alive(t) {
                break i;
            }
        };
        let internal = [
            "postgres.payments.svc.cluster.local.",
            "payments-api.payments.svc.cluster.local.",
            "cart.shop.svc.cluster.local.",
            "kubernetes.default.svc.cluster.local.",
        ];
        let external = [
            "api.stripe.com",
            "sts.us-east-1.amazonaws.com",
            "sqs.us-east-1.amazonaws.com",
            "hooks.slack.com",
            "o450212.ingest.sentry.io",
        ];
        let port = rng::range(r, 32768, 60999);
        let mut names: Vec<(String, &str, &str)> = Vec::with_capacity(5);
        if q.app == App::Nginx || rng::chance(r, 0.6) {
            names.push((rng::pick(r, &internal).to_string(), "NOERROR", "qr,aa,rd"));
        } else {
            let e = *rng::pick(r, &external);
            for suffix in [
                format!("{}.svc.cluster.local.", q.ns),
                "svc.cluster.local.".to_string(),
                "cluster.local.".to_string(),
            ] {
                names.push((format!("{e}.{suffix}"), "NXDOMAIN", "qr,aa,rd"));
            }
            names.push((format!("{e}.ec2.internal."), "NXDOMAIN", "qr,rd,ra"));
            names.push((format!("{e}."), "NOERROR", "qr,rd,ra"));
        }
        let mut lt = t;
        for (name, rcode, flags) in &names {
            for qt in ["A", "AAAA"] {
                let r = &mut self.r;
                let id = rng::range(r, 1, 65535);
                let size = name.len() as u64 + 17 + 11;
                let rsize = if *rcode == "NXDOMAIN" {
                    size + 93
                } else if qt == "A" {
                    size + 16 * rng::range(r, 1, 4)
                } else {
                    size + 93
                };
                let dur = if flags.contains("aa") {
                    rng::range(r, 40_000, 250_000)
                } else {
                    rng::range(r, 600_000, 4_000_000)
                };
                let tt = self.hdr(out, lt, false, false);
                out.extend_from_slice(b"[INFO] ");
                out.extend_from_slice(q.ip_s.as_bytes());
                out.push(b':');
                fmt::num(out, port);
                out.extend_from_slice(b" - ");
                fmt::num(out, id);
                out.extend_from_slice(b" \"");
                out.extend_from_slice(qt.as_bytes());
                out.extend_from_slice(b" IN ");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b" udp ");
                fmt::num(out, size);
                out.extend_from_slice(b" false 1232\" ");
                out.extend_from_slice(rcode.as_bytes());
                out.push(b' ');
                out.extend_from_slice(flags.as_bytes());
                out.push(b' ');
                fmt::num(out, rsize);
                out.extend_from_slice(b" 0.");
                fmt::pad(out, dur, 9);
                out.extend_from_slice(b"s\n");
                lt = tt + dur as i64 + 20 * US;
            }
        }
    }
}

/// Spring Boot start-up for pods the rollout starts, graceful shutdown for those it stops.
fn java_script(t: &Topo, p: &Pod, r: &mut Rng, clock: &mut Clock, items: &mut Vec<(i64, CriLine)>) {
    let app = p.containers[0];
    let class = if p.app == App::Cart {
        "CartApplication"
    } else {
        "PaymentsApplication"
    };
    let version = p.image.rsplit(':').next().unwrap_or("1.0.0");
    let line = |items: &mut Vec<(i64, CriLine)>,
                at: i64,
                level: &str,
                thread: &str,
                logger: &str,
                msg: &str,
                clock: &mut Clock| {
        let mut o = Vec::with_capacity(200);
        spring_header(&mut o, clock, at, level, app, thread, logger);
        o.extend_from_slice(msg.as_bytes());
        items.push((
            at,
            CriLine {
                stderr: false,
                msg: String::from_utf8(o).unwrap_or_default(),
            },
        ));
    };
    if p.started_in_window {
        let mut a = p.start + 400 * MS;
        for b in BANNER {
            items.push((
                a,
                CriLine {
                    stderr: false,
                    msg: b.to_string(),
                },
            ));
            a += 10 * US;
        }
        let steps: [(i64, &str, &str, String); 13] = [
            (700, "o.s.boot.StartupInfoLogger", "INFO", format!("Starting {class} v{version} using Java 17.0.11 with PID 1 (/app/{app}.jar started by app in /app)")),
            (720, "o.s.boot.SpringApplication", "INFO", "The following 1 profile is active: \"prod\"".into()),
            (3100, "o.s.b.w.embedded.tomcat.TomcatWebServer", "INFO", "Tomcat initialized with port 8080 (http)".into()),
            (3130, "o.apache.catalina.core.StandardService", "INFO", "Starting service [Tomcat]".into()),
            (3140, "o.apache.catalina.core.StandardEngine", "INFO", "Starting Servlet engine: [Apache Tomcat/10.1.20]".into()),
            (3300, "o.a.c.c.C.[Tomcat].[localhost].[/]", "INFO", "Initializing Spring embedded WebApplicationContext".into()),
            (3310, "w.s.c.ServletWebServerApplicationContext", "INFO", format!("Root WebApplicationContext: initialization completed in {} ms", rng::range(r, 1500, 2600))),
            (4700, "com.zaxxer.hikari.HikariDataSource", "INFO", "HikariPool-1 - Starting...".into()),
            (5200, "com.zaxxer.hikari.pool.HikariPool", "INFO", format!("HikariPool-1 - Added connection org.postgresql.jdbc.PgConnection@{}", rng::hex(r, 8))),
            (5210, "com.zaxxer.hikari.HikariDataSource", "INFO", "HikariPool-1 - Start completed.".into()),
            (7600, "o.s.b.a.e.web.EndpointLinksResolver", "INFO", "Exposing 3 endpoint(s) beneath base path '/actuator'".into()),
            (8100, "o.s.b.w.embedded.tomcat.TomcatWebServer", "INFO", "Tomcat started on port 8080 (http) with context path ''".into()),
            (8200, "o.s.boot.StartupInfoLogger", "INFO", format!("Started {class} in {}.{:03} seconds (process running for {}.{:03})", 7, rng::range(r, 100, 900), 8, rng::range(r, 100, 900))),
        ];
        for (ms, logger, level, msg) in steps {
            line(items, p.start + ms * MS, level, "main", logger, &msg, clock);
        }
    }
    if p.stopped_in_window {
        let a = p.end - 5900 * MS;
        line(
            items,
            a,
            "INFO",
            "ionShutdownHook",
            "o.s.b.w.e.tomcat.GracefulShutdown",
            "Commencing graceful shutdown. Waiting for active requests to complete",
            clock,
        );
        line(
            items,
            a + 320 * MS,
            "INFO",
            "tomcat-shutdown",
            "o.s.b.w.e.tomcat.GracefulShutdown",
            "Graceful shutdown complete",
            clock,
        );
        line(
            items,
            a + 400 * MS,
            "INFO",
            "ionShutdownHook",
            "com.zaxxer.hikari.HikariDataSource",
            "HikariPool-1 - Shutdown initiated...",
            clock,
        );
        line(
            items,
            a + 430 * MS,
            "INFO",
            "ionShutdownHook",
            "com.zaxxer.hikari.HikariDataSource",
            "HikariPool-1 - Shutdown completed.",
            clock,
        );
    }
    let _ = t;
}

/// Connections opened and closed by pods that start or stop, and the attack's dump on the first server.
fn pg_script(
    t: &Topo,
    p: &Pod,
    clients: &[usize],
    r: &mut Rng,
    clock: &mut Clock,
    items: &mut Vec<(i64, CriLine)>,
) {
    let mut pid = 30_000 + rng::range(r, 0, 5000) as u32;
    let mut line = |at: i64, pid: u32, sev: &str, msg: String, clock: &mut Clock| {
        let mut o = Vec::with_capacity(160);
        clock.postgres(&mut o, at);
        o.extend_from_slice(format!(" [{pid}] {sev}:  {msg}").as_bytes());
        items.push((
            at,
            CriLine {
                stderr: true,
                msg: String::from_utf8(o).unwrap_or_default(),
            },
        ));
    };
    for &c in clients {
        let q = &t.pods[c];
        let db = if q.app == App::Cart {
            "cart"
        } else {
            "payments"
        };
        if q.started_in_window {
            for k in 0..10 {
                let at = q.start + 5200 * MS + k * 40 * MS;
                pid += rng::range(r, 1, 9) as u32;
                line(
                    at,
                    pid,
                    "LOG",
                    format!(
                        "connection received: host={} port={}",
                        q.ip_s,
                        rng::range(r, 32768, 60999)
                    ),
                    clock,
                );
                line(at + 2 * MS, pid, "LOG", format!("connection authorized: user={db} database={db} application_name=PostgreSQL JDBC Driver"), clock);
            }
        }
        if q.stopped_in_window {
            for k in 0..10 {
                let at = q.end - 5450 * MS + k * 3 * MS;
                line(at, pid + k as u32, "LOG", format!("disconnection: session time: 0:{:02}:{:02}.{:03} user={db} database={db} host={} port={}", rng::range(r, 0, 29), rng::range(r, 0, 59), rng::range(r, 0, 999), q.ip_s, rng::range(r, 32768, 60999)), clock);
            }
        }
    }
    // The attacker's pg_dump from inside the exec'd payments-api pod.
    let victim = &t.pods[t.victim];
    if p.replica == 0 {
        let s = t.attack.dump;
        let port = rng::range(r, 32768, 60999);
        let dpid = pid + 17;
        line(
            s,
            dpid,
            "LOG",
            format!("connection received: host={} port={port}", victim.ip_s),
            clock,
        );
        line(
            s + 3 * MS,
            dpid,
            "LOG",
            "connection authorized: user=payments database=payments application_name=pg_dump"
                .into(),
            clock,
        );
        let d1 = rng::range(r, 41_000_000, 52_000_000);
        let d2 = rng::range(r, 9_000_000, 14_000_000);
        line(s + (d1 as i64) * 1000 + 900 * MS, dpid, "LOG", format!("duration: {}.{:03} ms  statement: COPY public.customers (id, email, full_name, phone, billing_address, created_at) TO stdout;", d1 / 1000, d1 % 1000), clock);
        line(s + ((d1 + d2) as i64) * 1000 + 1400 * MS, dpid, "LOG", format!("duration: {}.{:03} ms  statement: COPY public.payment_methods (id, customer_id, stripe_pm_id, card_brand, card_last4, exp_month, exp_year, fingerprint) TO stdout;", d2 / 1000, d2 % 1000), clock);
        let total = (d1 + d2) / 1000 + 3;
        line(s + (total as i64) * SEC, dpid, "LOG", format!("disconnection: session time: 0:01:{:02}.{:03} user=payments database=payments host={} port={port}", total - 60, rng::range(r, 0, 999), victim.ip_s), clock);
    }
}

/// What the privileged pod prints: tar's warnings and the exfiltration server's reply.
fn debugger_script(t: &Topo, r: &mut Rng, items: &mut Vec<(i64, CriLine)>) {
    let victim = &t.pods[t.victim];
    let s = t.attack.exfil;
    items.push((
        s + rng::range(r, 100 * MS as u64, 300 * MS as u64) as i64,
        CriLine {
            stderr: true,
            msg: "tar: Removing leading `/' from member names".into(),
        },
    ));
    items.push((
        s + rng::range(r, 30 * SEC as u64, 50 * SEC as u64) as i64,
        CriLine {
            stderr: true,
            msg: format!(
                "tar: /var/lib/kubelet/pods/{}/volumes/kubernetes.io~empty-dir/tmp/pg.dump: file changed as we read it",
                victim.uid
            ),
        },
    ));
    items.push((
        s + t.attack.exfil_len - rng::range(r, 2 * SEC as u64, 5 * SEC as u64) as i64,
        CriLine {
            stderr: false,
            msg: format!("{{\"ok\":true,\"stored\":\"{}.tgz\"}}", rng::hex(r, 16)),
        },
    ));
}

impl Actors for CriStream {
    fn sched(&mut self) -> &mut Sched {
        &mut self.sched
    }

    fn fire(&mut self, t: i64, a: u32, out: &mut Vec<u8>) {
        CriStream::fire(self, t, a, out)
    }
}
