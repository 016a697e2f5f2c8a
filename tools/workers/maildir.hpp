// maildir.hpp — deliver a rendered mail into a Maildir, idempotently.
//
// A Maildir (maildir(5)) has tmp/, new/ and cur/. A mail is written whole
// into tmp/<name> and then renamed into new/<name>: rename(2) is atomic, so
// a reader never sees half a mail, and delivering the same message id twice
// (a cast redelivered after its first server died mid-way) replaces the
// file instead of making a duplicate.
#pragma once

#include <string>
#include <string_view>

namespace shmbus::examples {

class Maildir {
 public:
  // Creates `root`, root/tmp, root/new and root/cur as needed. Returns an
  // empty string on success, else what failed (with strerror).
  [[nodiscard]] static std::string prepare(const std::string& root);

  explicit Maildir(std::string root) : root_(std::move(root)) {}

  // Writes `text` to tmp/<name>, then renames it to new/<name>. Returns an
  // empty string on success, else what failed (the tmp file is removed).
  [[nodiscard]] std::string deliver(std::string_view name, std::string_view text) const;

 private:
  std::string root_;
};

}  // namespace shmbus::examples
