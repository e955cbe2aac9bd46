// Copyright 2026 The libcdp Authors.
//
// Retention (include/cdp/privacy.h): the stored policies, the scheduler thread that applies them every
// Options::retention_interval_seconds, and the run records. The purges themselves go through the engine's write
// path (EngineImpl::PurgeEventsBefore, DeleteProfile), in retention_impl.cc.
//
// Storage, Cf::kPrivacy: "gretention" -> {"policies": [...]} (JSON); "x" run id -> a run record (JSON; ids are
// monotonic "rrun_" ULIDs, so records sort oldest first).

#ifndef CDP_ENGINE_RETENTION_IMPL_H_
#define CDP_ENGINE_RETENTION_IMPL_H_

#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cdp/privacy.h"
#include "privacy/retention_model.h"

namespace cdp::internal {

class EngineImpl;

class RetentionImpl final : public Retention {
 public:
  explicit RetentionImpl(EngineImpl* engine) : engine_(engine) {}
  ~RetentionImpl() override { Stop(); }

  // Reads the policies, then starts the scheduler (when the interval is positive). Called once by Engine::Open.
  Status Start();
  // Stops the scheduler, waiting for a run in progress. Idempotent.
  void Stop();

  Result<Json> Policies() override;
  Result<Json> SetPolicies(const Json& policies) override;
  Result<Json> Run() override;
  Result<Json> Runs(const Json& filter) override;

 private:
  // Applies every enabled policy and records the run. One at a time (run_mu_).
  Result<Json> RunNow(std::string_view trigger);
  void Schedule();

  EngineImpl* engine_;
  std::mutex mu_;
  std::vector<RetentionPolicy> policies_;  // guarded by mu_
  bool stopping_ = false;                  // guarded by mu_
  std::condition_variable wake_;
  std::mutex run_mu_;  // held by a run
  std::thread thread_;
};

}  // namespace cdp::internal

#endif  // CDP_ENGINE_RETENTION_IMPL_H_
