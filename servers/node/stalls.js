'use strict';
// What stopped this process (servers/stalls.py): garbage collections, from V8's
// performance entries, and, with RTBENCH_LOOP_WATCH=1, late event-loop turns. The
// `stats` operation reports them in the Python servers' shape, on the same clock
// (CLOCK_MONOTONIC nanoseconds), so a run can lay them over its latencies.
//
// V8's collections map onto the three Python generations as: minor (scavenge) ->
// gen 0, incremental marking and weak callbacks -> gen 1, major (mark-sweep-
// compact) -> gen 2.

const { PerformanceObserver, constants, performance } = require('node:perf_hooks');
const { PyFloat } = require('./json');

const LOOP_PERIOD_S = 0.01;
const LOOP_WATCH_ENV = 'RTBENCH_LOOP_WATCH';
const MIN_EVENT_MS = 5.0;
const MAX_EVENTS = 5000;
const GC_KINDS = ['gc0', 'gc1', 'gc2'];

function serverWatchesLoop(env = process.env) {
  return (env[LOOP_WATCH_ENV] || '0').trim() === '1';
}

function generation(kind) {
  if (kind === constants.NODE_PERFORMANCE_GC_MINOR) return 0;
  if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) return 2;
  return 1;
}

const ms3 = (ns) => new PyFloat(Math.round(Number(ns) / 1e3) / 1e3);

class Stalls {
  constructor() {
    this.minEventNs = BigInt(MIN_EVENT_MS * 1e6);
    this.gcCount = [0, 0, 0];
    this.gcTotalNs = [0n, 0n, 0n];
    this.gcMaxNs = [0n, 0n, 0n];
    this.loopChecks = 0;
    this.loopLateNs = 0n;
    this.loopMaxNs = 0n;
    // [duration, start, kind]; once full, the shortest is replaced.
    this.events = [];
    this.observer = null;
    this.timer = null;
    // performance.now() (ms since start) to CLOCK_MONOTONIC ns.
    this.originNs = process.hrtime.bigint() - BigInt(Math.round(performance.now() * 1e6));
  }

  install() {
    if (this.observer) return;
    this.observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const start = this.originNs + BigInt(Math.round(entry.startTime * 1e6));
        const duration = BigInt(Math.round(entry.duration * 1e6));
        this.gcPause(generation(entry.detail ? entry.detail.kind : entry.kind), start, duration);
      }
    });
    this.observer.observe({ entryTypes: ['gc'] });
  }

  uninstall() {
    if (this.observer) this.observer.disconnect();
    this.observer = null;
    this.stopLoop();
  }

  gcPause(gen, startNs, durationNs) {
    this.gcCount[gen]++;
    this.gcTotalNs[gen] += durationNs;
    if (durationNs > this.gcMaxNs[gen]) this.gcMaxNs[gen] = durationNs;
    this.keep(startNs, durationNs, GC_KINDS[gen]);
  }

  /** Wake every LOOP_PERIOD_S and count how late each wake-up came. */
  watchLoop() {
    const periodNs = BigInt(LOOP_PERIOD_S * 1e9);
    let due = process.hrtime.bigint() + periodNs;
    const tick = () => {
      const now = process.hrtime.bigint();
      const late = now > due ? now - due : 0n;
      this.loopChecks++;
      this.loopLateNs += late;
      if (late > this.loopMaxNs) this.loopMaxNs = late;
      this.keep(due, late, 'loop');
      due = due + periodNs > now ? due + periodNs : now;
      this.timer = setTimeout(tick, Math.max(0, Number(due - process.hrtime.bigint()) / 1e6));
    };
    this.timer = setTimeout(tick, LOOP_PERIOD_S * 1e3);
  }

  stopLoop() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  keep(startNs, durationNs, kind) {
    if (durationNs < this.minEventNs) return;
    const entry = [durationNs, startNs, kind];
    if (this.events.length < MAX_EVENTS) {
      this.events.push(entry);
      return;
    }
    let shortest = 0;
    for (let k = 1; k < this.events.length; k++) {
      if (this.events[k][0] < this.events[shortest][0]) shortest = k;
    }
    if (durationNs > this.events[shortest][0]) this.events[shortest] = entry;
  }

  /** Totals and the kept events starting at or after `sinceNs`, in time order. */
  report(sinceNs = null, limit = 1000) {
    let events = this.events
      .filter(([, start]) => sinceNs === null || start >= BigInt(sinceNs))
      .sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    if (events.length > limit) {
      const keep = new Set([...events].sort((a, b) => (a[0] > b[0] ? -1 : 1)).slice(0, limit));
      events = events.filter((e) => keep.has(e));
    }
    return {
      gc: {
        collections: [...this.gcCount],
        total_ms: this.gcTotalNs.map(ms3),
        max_ms: this.gcMaxNs.map(ms3),
      },
      loop: {
        period_ms: new PyFloat(LOOP_PERIOD_S * 1e3),
        checks: this.loopChecks,
        late_ms_total: ms3(this.loopLateNs),
        max_ms: ms3(this.loopMaxNs),
      },
      min_event_ms: new PyFloat(MIN_EVENT_MS),
      events: events.map(([dur, start, kind]) => [start, ms3(dur), kind]),
    };
  }
}

module.exports = { Stalls, serverWatchesLoop, LOOP_WATCH_ENV };
