/*
 * netem-blast: sends UDP datagrams as fast as one core can (sendmmsg, 64 per call) for a
 * number of seconds, to measure the packet rate the forwarder sustains without the sender
 * being the bottleneck. Run it inside namespace A (ip netns exec); it prints one JSON line.
 *
 * Usage: netem-blast HOST PORT SECONDS [PAYLOAD_BYTES]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: netem-blast HOST PORT SECONDS [PAYLOAD_BYTES]\n");
    return 2;
  }
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
    fprintf(stderr, "netem-blast: bad address %s\n", argv[1]);
    return 2;
  }
  double seconds = atof(argv[3]);
  size_t size = argc > 4 ? (size_t)atoi(argv[4]) : 64;
  if (size < 8 || size > 1472) size = 64;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
    perror("netem-blast: socket");
    return 1;
  }
  static uint8_t bufs[BATCH][1472];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = bufs[i];
    iov[i].iov_len = size;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t sent = 0, errors = 0;
  double t0 = now_s(), t;
  while ((t = now_s()) - t0 < seconds) {
    int n = sendmmsg(fd, msgs, BATCH, 0);
    if (n < 0) {
      if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED) {
        perror("netem-blast: sendmmsg");
        return 1;
      }
      errors++;
      continue;
    }
    sent += (uint64_t)n;
  }
  printf("{\"sent\":%llu,\"errors\":%llu,\"seconds\":%.3f}\n", (unsigned long long)sent,
         (unsigned long long)errors, t - t0);
  return 0;
}
