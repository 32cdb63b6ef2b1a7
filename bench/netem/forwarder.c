/*
 * netem-forwarder: a user-space packet-level link emulator between two network namespaces.
 *
 * It opens one TUN device inside each namespace (it enters the namespace with setns(2) only
 * long enough to create the device, then returns to its own), so it holds two file
 * descriptors: every IP packet the kernel of namespace A routes to its TUN device is read here,
 * impaired, and written into namespace B's TUN device, where B's kernel receives it as if it
 * had come off a wire - and the same the other way. TCP, UDP and ICMP are all just packets.
 *
 * Per direction, in this order (the model of one bottleneck link):
 *   1. random loss (Bernoulli) and burst loss (Gilbert-Elliott two-state chain), on arrival;
 *   2. a rate limit: a token bucket (rate, depth) in front of a FIFO bounded in packets
 *      (tail drop when full); departure times are computed exactly on arrival, so the rate
 *      holds on average no matter how late the timer fires;
 *   3. delay plus jitter (uniform in [-jitter, +jitter]); jitter never reorders packets
 *      (a packet is never delivered before the one sent ahead of it) unless jitter_reorders=1;
 *   4. reordering: with probability `reorder`, a packet is held back an extra
 *      `reorder_extra_ms`, so the packets behind it overtake it;
 *   5. delivery at the computed time: one timerfd (CLOCK_MONOTONIC, absolute, 1 ns slack)
 *      for both directions, one epoll loop, one thread.
 *
 * Control protocol on stdin, one command per line, one reply line on stdout:
 *   set a2b|b2a|both key=value ...   -> "ok" | "err <reason>"
 *   stats                            -> one line of JSON with counters per direction
 *   reset-stats                      -> "ok", counters back to zero
 *   quit                             -> tears down and exits (as does EOF on stdin,
 *                                       SIGINT, SIGTERM and SIGHUP)
 * Keys: delay_ms jitter_ms loss reorder reorder_extra_ms ge_p ge_r ge_loss_bad ge_loss_good
 *       rate_mbit burst_bytes queue_packets jitter_reorders seed
 * Startup prints "ready" once both devices exist.
 *
 * Teardown with --own-ns: processes still running inside the two namespaces get SIGKILL,
 * the TUN devices vanish with their descriptors, and the namespaces are deleted
 * (`ip netns del`), so a crashed benchmark (its pipe to us closes) leaves nothing behind.
 *
 * Usage: netem-forwarder --ns-a NAME --ns-b NAME [--dev NAME] [--own-ns] [--rt]
 *   --rt  run in the SCHED_FIFO class (priority 10), else at nice -10 if allowed
 * Build: cc -O2 -o netem-forwarder forwarder.c   (bench/netem/build.sh)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PKT 65536
#define SLOT_SIZE 2048
#define READ_BATCH 128

/* ---------- time and randomness ---------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct { uint64_t s; } rng_t;
/* splitmix64: small, fast, good enough for loss decisions */
static uint64_t rng_next(rng_t *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
/* uniform in [0, 1) */
static double rng_unit(rng_t *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

/* ---------- packets ---------- */

typedef struct pkt {
  uint64_t due;
  uint64_t seq; /* tie-break: FIFO among equal due times */
  uint32_t len;
  uint32_t cap;
  struct pkt *next_free;
  uint8_t data[];
} pkt_t;

static pkt_t *free_slots = NULL;

static pkt_t *pkt_alloc(uint32_t len) {
  pkt_t *p;
  if (len <= SLOT_SIZE && free_slots) {
    p = free_slots;
    free_slots = p->next_free;
  } else {
    uint32_t cap = len <= SLOT_SIZE ? SLOT_SIZE : len;
    p = malloc(sizeof(pkt_t) + cap);
    if (!p) return NULL;
    p->cap = cap;
  }
  p->len = len;
  return p;
}

static void pkt_free(pkt_t *p) {
  if (p->cap == SLOT_SIZE) {
    p->next_free = free_slots;
    free_slots = p;
  } else {
    free(p);
  }
}

/* ---------- a binary min-heap on (due, seq) ---------- */

typedef struct {
  pkt_t **a;
  size_t n, cap;
} heap_t;

static int pkt_before(const pkt_t *x, const pkt_t *y) {
  return x->due < y->due || (x->due == y->due && x->seq < y->seq);
}

static int heap_push(heap_t *h, pkt_t *p) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 1024;
    pkt_t **a = realloc(h->a, cap * sizeof(pkt_t *));
    if (!a) return -1;
    h->a = a;
    h->cap = cap;
  }
  size_t i = h->n++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!pkt_before(p, h->a[parent])) break;
    h->a[i] = h->a[parent];
    i = parent;
  }
  h->a[i] = p;
  return 0;
}

static pkt_t *heap_pop(heap_t *h) {
  pkt_t *top = h->a[0];
  pkt_t *last = h->a[--h->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const pkt_t *best = last;
    if (l < h->n && pkt_before(h->a[l], best)) { m = l; best = h->a[l]; }
    if (r < h->n && pkt_before(h->a[r], best)) { m = r; }
    if (m == i) break;
    h->a[i] = h->a[m];
    i = m;
  }
  if (h->n > 0) h->a[i] = last;
  return top;
}

/* ---------- one direction of the link ---------- */

typedef struct {
  double delay_ns, jitter_ns, loss, reorder, reorder_extra_ns;
  double ge_p, ge_r, ge_loss_bad, ge_loss_good;
  double rate_bytes_per_ns; /* 0: unlimited */
  double burst_bytes;
  uint32_t queue_packets;
  int jitter_reorders;
} params_t;

typedef struct {
  uint64_t rx, rx_bytes, lost_random, lost_burst, queue_drops, reordered, delivered, delivered_bytes,
      write_errors, max_queue, alloc_errors;
  /* how late the forwarder delivered packets, relative to their computed time */
  uint64_t late_1ms, late_max_ns;
} stats_t;

typedef struct {
  const char *name;
  int in_fd, out_fd;
  params_t p;
  stats_t st;
  rng_t rng;
  int ge_bad;
  /* token bucket */
  double tokens;
  uint64_t tok_time, last_depart;
  /* departure times of packets still waiting in the bottleneck queue (a FIFO ring) */
  uint64_t *q;
  uint32_t q_cap, q_head, q_len;
  /* delivery */
  uint64_t last_due; /* order-preserving clamp for jitter */
  heap_t line;
} dir_t;

static uint64_t seq_counter = 0;

static void params_default(params_t *p) {
  memset(p, 0, sizeof(*p));
  p->reorder_extra_ns = 5e6;
  p->ge_loss_bad = 1.0;
  p->ge_loss_good = 0.0;
  p->burst_bytes = 1514;
  p->queue_packets = 1000;
}

static int queue_resize(dir_t *d, uint32_t cap) {
  /* only called when the queue is re-sized by `set`: keep the newest departures that fit */
  uint64_t *q = calloc(cap ? cap : 1, sizeof(uint64_t));
  if (!q) return -1;
  uint32_t keep = d->q_len < cap ? d->q_len : cap;
  for (uint32_t i = 0; i < keep; i++) q[i] = d->q[(d->q_head + d->q_len - keep + i) % d->q_cap];
  free(d->q);
  d->q = q;
  d->q_cap = cap ? cap : 1;
  d->q_head = 0;
  d->q_len = keep;
  return 0;
}

/* One packet arrives from the sending namespace; decide its fate. */
static void dir_arrive(dir_t *d, const uint8_t *data, uint32_t len, uint64_t now) {
  d->st.rx++;
  d->st.rx_bytes += len;
  const params_t *p = &d->p;

  /* 1. loss */
  if (p->ge_p > 0) {
    if (d->ge_bad) {
      if (rng_unit(&d->rng) < p->ge_r) d->ge_bad = 0;
    } else {
      if (rng_unit(&d->rng) < p->ge_p) d->ge_bad = 1;
    }
    double pl = d->ge_bad ? p->ge_loss_bad : p->ge_loss_good;
    if (pl > 0 && rng_unit(&d->rng) < pl) {
      d->st.lost_burst++;
      return;
    }
  }
  if (p->loss > 0 && rng_unit(&d->rng) < p->loss) {
    d->st.lost_random++;
    return;
  }

  /* 2. rate limit: token bucket feeding from a bounded FIFO */
  uint64_t depart = now;
  if (p->rate_bytes_per_ns > 0) {
    while (d->q_len > 0 && d->q[d->q_head] <= now) {
      d->q_head = (d->q_head + 1) % d->q_cap;
      d->q_len--;
    }
    if (d->q_len >= p->queue_packets) {
      d->st.queue_drops++;
      return;
    }
    uint64_t s = now > d->last_depart ? now : d->last_depart;
    double depth = p->burst_bytes > len ? p->burst_bytes : (double)len;
    double tokens = d->tokens + (double)(s - d->tok_time) * p->rate_bytes_per_ns;
    if (tokens > depth) tokens = depth;
    if (tokens >= len) {
      depart = s;
      tokens -= len;
    } else {
      depart = s + (uint64_t)ceil(((double)len - tokens) / p->rate_bytes_per_ns);
      tokens = 0;
    }
    d->tokens = tokens;
    d->tok_time = depart;
    d->last_depart = depart;
    if (depart > now) {
      d->q[(d->q_head + d->q_len) % d->q_cap] = depart;
      d->q_len++;
      if (d->q_len > d->st.max_queue) d->st.max_queue = d->q_len;
    }
  }

  /* 3. delay and jitter */
  double delay = p->delay_ns;
  if (p->jitter_ns > 0) delay += (2.0 * rng_unit(&d->rng) - 1.0) * p->jitter_ns;
  if (delay < 0) delay = 0;
  uint64_t due = depart + (uint64_t)delay;

  /* 4. reordering: hold this one back; it does not move the order-preserving clamp */
  if (p->reorder > 0 && rng_unit(&d->rng) < p->reorder) {
    due += (uint64_t)p->reorder_extra_ns;
    d->st.reordered++;
  } else {
    if (!p->jitter_reorders && due < d->last_due) due = d->last_due;
    d->last_due = due;
  }

  pkt_t *pk = pkt_alloc(len);
  if (!pk) {
    d->st.alloc_errors++;
    return;
  }
  memcpy(pk->data, data, len);
  pk->due = due;
  pk->seq = seq_counter++;
  if (heap_push(&d->line, pk) != 0) {
    pkt_free(pk);
    d->st.alloc_errors++;
  }
}

static void dir_deliver(dir_t *d, uint64_t now) {
  while (d->line.n > 0 && d->line.a[0]->due <= now) {
    pkt_t *pk = heap_pop(&d->line);
    uint64_t late = now - pk->due;
    if (late > d->st.late_max_ns) d->st.late_max_ns = late;
    if (late > 1000000) d->st.late_1ms++;
    ssize_t w = write(d->out_fd, pk->data, pk->len);
    if (w < 0) {
      d->st.write_errors++;
    } else {
      d->st.delivered++;
      d->st.delivered_bytes += pk->len;
    }
    pkt_free(pk);
  }
}

/* ---------- namespaces and TUN devices ---------- */

static int valid_name(const char *s) {
  if (!*s || strlen(s) >= IFNAMSIZ + 16) return 0;
  for (; *s; s++) {
    char c = *s;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return 0;
  }
  return 1;
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "netem-forwarder: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static int open_tun_in_ns(const char *ns, const char *dev, int home_ns) {
  char path[256];
  snprintf(path, sizeof path, "/run/netns/%s", ns);
  int nsfd = open(path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) die("cannot open %s: %s", path, strerror(errno));
  if (setns(nsfd, CLONE_NEWNET) != 0) die("setns(%s): %s", ns, strerror(errno));
  close(nsfd);
  /* the device is created in the namespace the descriptor was opened in */
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die("cannot open /dev/net/tun in %s: %s", ns, strerror(errno));
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(ifr.ifr_name, dev, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) die("TUNSETIFF %s in %s: %s", dev, ns, strerror(errno));
  if (setns(home_ns, CLONE_NEWNET) != 0) die("setns(home): %s", strerror(errno));
  return fd;
}

static const char *own_ns[2] = {NULL, NULL};
static int tun_fds[2] = {-1, -1};

static void run_ip(const char *a1, const char *a2, const char *a3) {
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    execlp("ip", "ip", a1, a2, a3, (char *)NULL);
    _exit(127);
  }
  if (pid > 0) waitpid(pid, NULL, 0);
}

static void kill_ns_processes(const char *ns) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "ip netns pids %s 2>/dev/null", ns);
  FILE *f = popen(cmd, "r");
  if (!f) return;
  char line[64];
  pid_t self = getpid();
  while (fgets(line, sizeof line, f)) {
    long pid = strtol(line, NULL, 10);
    if (pid > 1 && pid != self) kill((pid_t)pid, SIGKILL);
  }
  pclose(f);
}

static void teardown(void) {
  for (int i = 0; i < 2; i++)
    if (own_ns[i]) kill_ns_processes(own_ns[i]);
  for (int i = 0; i < 2; i++)
    if (tun_fds[i] >= 0) close(tun_fds[i]);
  for (int i = 0; i < 2; i++)
    if (own_ns[i]) run_ip("netns", "del", own_ns[i]);
}

/* ---------- control ---------- */

static dir_t dirs[2];

static void reply(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stdout, fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);
}

static int apply_kv(dir_t *d, int idx, const char *key, double v) {
  params_t *p = &d->p;
  if (!strcmp(key, "delay_ms")) { if (v < 0) return -1; p->delay_ns = v * 1e6; }
  else if (!strcmp(key, "jitter_ms")) { if (v < 0) return -1; p->jitter_ns = v * 1e6; }
  else if (!strcmp(key, "loss")) { if (v < 0 || v > 1) return -1; p->loss = v; }
  else if (!strcmp(key, "reorder")) { if (v < 0 || v > 1) return -1; p->reorder = v; }
  else if (!strcmp(key, "reorder_extra_ms")) { if (v < 0) return -1; p->reorder_extra_ns = v * 1e6; }
  else if (!strcmp(key, "ge_p")) { if (v < 0 || v > 1) return -1; p->ge_p = v; if (v == 0) d->ge_bad = 0; }
  else if (!strcmp(key, "ge_r")) { if (v < 0 || v > 1) return -1; p->ge_r = v; }
  else if (!strcmp(key, "ge_loss_bad")) { if (v < 0 || v > 1) return -1; p->ge_loss_bad = v; }
  else if (!strcmp(key, "ge_loss_good")) { if (v < 0 || v > 1) return -1; p->ge_loss_good = v; }
  else if (!strcmp(key, "rate_mbit")) {
    if (v < 0) return -1;
    p->rate_bytes_per_ns = v * 1e6 / 8.0 / 1e9;
    d->tokens = p->burst_bytes;
    d->tok_time = d->last_depart = now_ns();
  }
  else if (!strcmp(key, "burst_bytes")) { if (v < 1) return -1; p->burst_bytes = v; }
  else if (!strcmp(key, "queue_packets")) {
    if (v < 1 || v > 10000000) return -1;
    p->queue_packets = (uint32_t)v; /* the ring is resized by the caller */
  }
  else if (!strcmp(key, "jitter_reorders")) { p->jitter_reorders = v != 0; }
  else if (!strcmp(key, "seed")) { d->rng.s = (uint64_t)v * 2 + (uint64_t)idx; }
  else return -2;
  return 0;
}

static void stats_json(char *buf, size_t n) {
  size_t off = (size_t)snprintf(buf, n, "{");
  for (int i = 0; i < 2; i++) {
    const dir_t *d = &dirs[i];
    const stats_t *s = &d->st;
    off += (size_t)snprintf(buf + off, n - off,
                            "%s\"%s\":{\"rx\":%llu,\"rxBytes\":%llu,\"lostRandom\":%llu,\"lostBurst\":%llu,"
                            "\"queueDrops\":%llu,\"reordered\":%llu,\"delivered\":%llu,\"deliveredBytes\":%llu,"
                            "\"writeErrors\":%llu,\"maxQueue\":%llu,\"inFlight\":%zu,\"allocErrors\":%llu,"
                            "\"late1ms\":%llu,\"lateMaxUs\":%.1f}",
                            i ? "," : "", d->name, (unsigned long long)s->rx, (unsigned long long)s->rx_bytes,
                            (unsigned long long)s->lost_random, (unsigned long long)s->lost_burst,
                            (unsigned long long)s->queue_drops, (unsigned long long)s->reordered,
                            (unsigned long long)s->delivered, (unsigned long long)s->delivered_bytes,
                            (unsigned long long)s->write_errors, (unsigned long long)s->max_queue,
                            d->line.n, (unsigned long long)s->alloc_errors, (unsigned long long)s->late_1ms,
                            (double)s->late_max_ns / 1000.0);
  }
  snprintf(buf + off, n - off, "}");
}

/* returns 1 to quit */
static int handle_command(char *line) {
  char *save = NULL;
  char *cmd = strtok_r(line, " \t\r", &save);
  if (!cmd) return 0;
  if (!strcmp(cmd, "quit")) return 1;
  if (!strcmp(cmd, "stats")) {
    char buf[2048];
    stats_json(buf, sizeof buf);
    reply("%s", buf);
    return 0;
  }
  if (!strcmp(cmd, "reset-stats")) {
    memset(&dirs[0].st, 0, sizeof(stats_t));
    memset(&dirs[1].st, 0, sizeof(stats_t));
    reply("ok");
    return 0;
  }
  if (strcmp(cmd, "set") != 0) {
    reply("err unknown command %s", cmd);
    return 0;
  }
  char *which = strtok_r(NULL, " \t\r", &save);
  int lo, hi;
  if (which && !strcmp(which, "a2b")) lo = hi = 0;
  else if (which && !strcmp(which, "b2a")) lo = hi = 1;
  else if (which && !strcmp(which, "both")) { lo = 0; hi = 1; }
  else { reply("err direction must be a2b, b2a or both"); return 0; }
  /* validate everything on copies of the parameters first, then commit */
  dir_t copy[2];
  memcpy(copy, dirs, sizeof copy);
  char *tok;
  while ((tok = strtok_r(NULL, " \t\r", &save))) {
    char *eq = strchr(tok, '=');
    if (!eq) { reply("err expected key=value, got %s", tok); return 0; }
    *eq = 0;
    char *end;
    double v = strtod(eq + 1, &end);
    if (end == eq + 1 || *end || !isfinite(v)) { reply("err bad number for %s", tok); return 0; }
    for (int i = lo; i <= hi; i++) {
      int rc = apply_kv(&copy[i], i, tok, v);
      if (rc == -2) { reply("err unknown key %s", tok); return 0; }
      if (rc != 0) { reply("err bad value for %s", tok); return 0; }
    }
  }
  for (int i = lo; i <= hi; i++) {
    /* the copies share the queue ring and the heap with the originals; only scalars changed */
    uint32_t qp = copy[i].p.queue_packets;
    int resize = qp != dirs[i].q_cap;
    dirs[i] = copy[i];
    if (resize && queue_resize(&dirs[i], qp) != 0) { reply("err out of memory"); return 0; }
  }
  reply("ok");
  return 0;
}

/* ---------- main ---------- */

int main(int argc, char **argv) {
  const char *ns_a = NULL, *ns_b = NULL, *dev = "mqtun";
  int own = 0, rt = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--ns-a") && i + 1 < argc) ns_a = argv[++i];
    else if (!strcmp(argv[i], "--ns-b") && i + 1 < argc) ns_b = argv[++i];
    else if (!strcmp(argv[i], "--dev") && i + 1 < argc) dev = argv[++i];
    else if (!strcmp(argv[i], "--own-ns")) own = 1;
    else if (!strcmp(argv[i], "--rt")) rt = 1;
    else die("usage: netem-forwarder --ns-a NAME --ns-b NAME [--dev NAME] [--own-ns] [--rt]");
  }
  if (!ns_a || !ns_b || !valid_name(ns_a) || !valid_name(ns_b) || !valid_name(dev) || strlen(dev) >= IFNAMSIZ)
    die("need valid --ns-a and --ns-b names ([A-Za-z0-9_-])");

  signal(SIGPIPE, SIG_IGN);
  if (rt) {
    /* Kernel netem runs in softirq context, ahead of every process; the closest a process
     * gets is a real-time class, so that a busy machine delays the benchmark's endpoints but
     * not the link. It sleeps in epoll_wait whenever no packet is due, and the kernel's RT
     * throttling (sched_rt_runtime_us) still leaves others 5% of a saturated core. */
    struct sched_param sp = {.sched_priority = 10};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) {
      if (setpriority(PRIO_PROCESS, 0, -10) != 0) { /* keep the default priority */ }
    }
  }
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  /* die with the parent even if our stdin somehow stays open */
  prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

  if (own) {
    own_ns[0] = ns_a;
    own_ns[1] = ns_b;
  }
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) die("cannot open /proc/self/ns/net: %s", strerror(errno));
  tun_fds[0] = open_tun_in_ns(ns_a, dev, home);
  tun_fds[1] = open_tun_in_ns(ns_b, dev, home);
  close(home);

  uint64_t t0 = now_ns();
  for (int i = 0; i < 2; i++) {
    memset(&dirs[i], 0, sizeof dirs[i]);
    dirs[i].name = i == 0 ? "a2b" : "b2a";
    dirs[i].in_fd = tun_fds[i];
    dirs[i].out_fd = tun_fds[1 - i];
    params_default(&dirs[i].p);
    dirs[i].rng.s = t0 ^ (0x1234567ull * (uint64_t)(i + 1));
    dirs[i].tokens = dirs[i].p.burst_bytes;
    dirs[i].tok_time = dirs[i].last_depart = t0;
    if (queue_resize(&dirs[i], dirs[i].p.queue_packets) != 0) die("out of memory");
  }

  int ep = epoll_create1(EPOLL_CLOEXEC);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct epoll_event ev;
  int fds[5] = {tun_fds[0], tun_fds[1], 0, tfd, sfd};
  for (int i = 0; i < 5; i++) {
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u32 = (uint32_t)i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0) die("epoll_ctl: %s", strerror(errno));
  }
  reply("ready");

  static uint8_t buf[MAX_PKT];
  char ctl[4096];
  size_t ctl_len = 0;
  uint64_t armed = 0;
  int quit = 0;
  while (!quit) {
    struct epoll_event evs[8];
    int n = epoll_wait(ep, evs, 8, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int k = 0; k < n && !quit; k++) {
      uint32_t which = evs[k].data.u32;
      if (which <= 1) {
        for (int b = 0; b < READ_BATCH; b++) {
          ssize_t r = read(tun_fds[which], buf, sizeof buf);
          if (r <= 0) break;
          dir_arrive(&dirs[which], buf, (uint32_t)r, now_ns());
        }
      } else if (which == 2) {
        ssize_t r = read(0, ctl + ctl_len, sizeof ctl - 1 - ctl_len);
        if (r == 0) { quit = 1; break; }
        if (r < 0) continue;
        ctl_len += (size_t)r;
        char *nl;
        while (!quit && (nl = memchr(ctl, '\n', ctl_len))) {
          *nl = 0;
          size_t used = (size_t)(nl - ctl) + 1;
          quit = handle_command(ctl);
          memmove(ctl, ctl + used, ctl_len - used);
          ctl_len -= used;
        }
        if (ctl_len == sizeof ctl - 1) ctl_len = 0; /* an absurdly long line: drop it */
      } else if (which == 3) {
        uint64_t expirations;
        if (read(tfd, &expirations, sizeof expirations) < 0) { /* spurious */ }
        armed = 0;
      } else {
        quit = 1;
      }
    }
    uint64_t now = now_ns();
    dir_deliver(&dirs[0], now);
    dir_deliver(&dirs[1], now);
    uint64_t next = 0;
    for (int i = 0; i < 2; i++)
      if (dirs[i].line.n > 0 && (next == 0 || dirs[i].line.a[0]->due < next)) next = dirs[i].line.a[0]->due;
    if (next != armed) {
      struct itimerspec its;
      memset(&its, 0, sizeof its);
      if (next) {
        its.it_value.tv_sec = (time_t)(next / 1000000000ull);
        its.it_value.tv_nsec = (long)(next % 1000000000ull);
      }
      timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
      armed = next;
    }
  }
  teardown();
  return 0;
}
