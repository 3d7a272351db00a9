//===- ThreadGovernor.h - One thread when the machine is busy ---*- C++ -*-===//
//
// The run-time half of a compiled module's thread choice: run by run,
// whether its multi-thread steps keep their counts or everything runs on
// one thread, decided from the runs' wall times (docs/performance.md,
// "Threads").
//
//===----------------------------------------------------------------------===//

#ifndef QFX_CODEGEN_THREADGOVERNOR_H
#define QFX_CODEGEN_THREADGOVERNOR_H

namespace qfx {

/// On a busy machine a run with several OpenMP threads can take many times
/// longer than on one (a worker preempted by another process holds up
/// every barrier of oneDNN's statically partitioned loops). A run on the
/// chosen counts slower than Slack times the one-thread time makes the
/// next runs use one thread; after a back-off (doubling while the probes
/// stay slow) the chosen counts are probed again.
class ThreadGovernor {
public:
  /// A chosen run slower than this share of the one-thread time falls back.
  static constexpr double Slack = 1.2;
  /// Runs on one thread after a slow probe: the first and the most.
  static constexpr int MinBackoff = 4, MaxBackoff = 256;

  /// \p SingleMs: the whole run's time on one thread (measured at compile
  /// time); 0 disables the governor (every run on the chosen counts).
  explicit ThreadGovernor(double SingleMs = 0.0) : SingleMs(SingleMs) {}

  /// Whether the next run keeps the chosen counts (else one thread).
  bool useChosen() const { return SingleMs <= 0.0 || Skip == 0; }

  /// Records a run's wall time; \p Chosen as useChosen() said.
  void record(bool Chosen, double Ms) {
    if (SingleMs <= 0.0)
      return;
    if (!Chosen) {
      --Skip;
      ++SingleRuns;
      // One-thread runs refine the compile-time estimate (which a busy
      // compile may have inflated).
      if (Ms < SingleMs)
        SingleMs = Ms;
      return;
    }
    if (Ms > Slack * SingleMs) {
      Skip = Backoff;
      Backoff = Backoff * 2 > MaxBackoff ? MaxBackoff : Backoff * 2;
      return;
    }
    Backoff = MinBackoff;
  }

  /// Runs made on one thread instead of the chosen counts.
  long singleRuns() const { return SingleRuns; }
  double singleMs() const { return SingleMs; }

private:
  double SingleMs;
  int Skip = 0;
  int Backoff = MinBackoff;
  long SingleRuns = 0;
};

} // namespace qfx

#endif // QFX_CODEGEN_THREADGOVERNOR_H
