// Copyright 2026 The libcdp Authors.

#include "core/parallel.h"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace cdp::internal {

// The helper threads and their queue. Never destroyed (helpers may outlive every engine, up to the process's exit);
// replaced in a child after fork(), where the parent's helpers do not exist and its mutex may be held.
class HelperPool {
 public:
  static HelperPool& Get() {
    static const bool registered = [] {
      pthread_atfork(nullptr, nullptr, [] { current_ = new HelperPool(); });  // the old one leaks: it may be locked
      return true;
    }();
    (void)registered;
    static std::once_flag once;
    std::call_once(once, [] {
      if (current_ == nullptr) current_ = new HelperPool();
    });
    return *current_;
  }

  bool Start(HelperTask* task) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_ <= queue_.size() && threads_ < max_threads_) {  // every idle helper has a queued task to take
      try {
        std::thread([this] { Loop(); }).detach();
        ++threads_;
        ++idle_;  // counted idle from now, so that the next Start does not start another for the same wait
      } catch (const std::system_error&) {
        if (threads_ == 0) return false;  // no helper at all: the task would never run
      }
    }
    queue_.push_back(task);  // first: should it throw, the task is not marked queued
    task->state_ = HelperTask::State::kQueued;
    work_.notify_one();
    return true;
  }

  bool Settle(HelperTask* task) {
    std::unique_lock<std::mutex> lock(mu_);
    switch (task->state_) {
      case HelperTask::State::kIdle:
        return false;
      case HelperTask::State::kQueued:
        queue_.erase(std::find(queue_.begin(), queue_.end(), task));
        task->state_ = HelperTask::State::kIdle;
        return false;
      case HelperTask::State::kRunning:
        done_.wait(lock, [task] { return task->state_ == HelperTask::State::kDone; });
        break;
      case HelperTask::State::kDone:
        break;
    }
    task->state_ = HelperTask::State::kIdle;  // settled: it may be destroyed, or started again
    return true;
  }

 private:
  HelperPool() : max_threads_(HelperTask::MaxHelpers()) {}

  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_.wait(lock, [this] { return !queue_.empty(); });
      --idle_;
      HelperTask* task = queue_.front();
      queue_.pop_front();
      task->state_ = HelperTask::State::kRunning;
      lock.unlock();
      task->fn_();
      lock.lock();
      task->state_ = HelperTask::State::kDone;  // the owner may destroy it once it sees this (under mu_)
      done_.notify_all();
      ++idle_;
    }
  }

  static inline HelperPool* current_ = nullptr;
  const size_t max_threads_;
  std::mutex mu_;
  std::condition_variable work_;  // a task was queued
  std::condition_variable done_;  // a task is done
  std::deque<HelperTask*> queue_;
  size_t threads_ = 0;  // started (they never end)
  size_t idle_ = 0;     // waiting for a task (or about to)
};

bool HelperTask::Start() { return HelperPool::Get().Start(this); }

bool HelperTask::Settle() { return HelperPool::Get().Settle(this); }

}  // namespace cdp::internal
