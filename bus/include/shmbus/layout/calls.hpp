// -----------------------------------------------------------------------------
// layout/calls.hpp — pending-call slots: who wins, the server or the deadline
// -----------------------------------------------------------------------------
//
// In the control segment, after the registry (control.hpp), every process
// slot p owns `calls_per_process` call slots; call slot i of process p is at
//
//   calls_offset + (p * calls_per_process + i) * call_stride
//
//   0        8            16       20       24       28      32           64
//   +--------+------------+--------+--------+--------+-------+------------+------------------+
//   | control| deadline_ns| waiters| length | service| flags | reply_loan | reply[max_reply] |
//
//   flags (ReplyFlags) and reply_loan (a LoanRecord, layout/blobs.hpp): a
//   reply too large for the slot comes back as a loan.
//
// A call request is a record in the service's mailbox whose `correlation`
// names {call slot index, generation} and whose `sender` names the caller's
// process: the server finds the slot from those two, bounds-checked.
//
// `control` (one 64-bit word, changed only by CAS, or by a plain store of the
// only party that may write it in that state: the caller's PENDING store is
// relaxed because the request's commit, a seq_cst CAS, publishes it):
//
//   bits 63..28  generation   36 bits; +1 each time the slot is freed
//   bits 27..4   who          24-bit process reference of the taker (TAKEN,
//                             ABANDONED), the Errc of a FAILED call, or why
//                             a FREE slot was freed (kFreed*, below)
//   bits 3..0    state        CallState
//
//   FREE(g) ─caller─▶ PENDING(g) ──server CAS──▶ TAKEN(g, S) ──server CAS──▶ REPLIED(g)
//                       │  │  │                    │    │ S dead: caller CAS        │ caller reads
//                       │  │  │ server: past       │    └──────────▶ FREE(g+1)     ▼
//                       │  │  │ deadline ▶ EXPIRED(g) ─caller─▶ FREE(g+1) ◀── caller stores
//                       │  │  └ server: bad request ▶ FAILED(g, errc) ─caller─▶ FREE(g+1)
//                       │  └ caller CAS at its deadline ──────────────────▶ FREE(g+1)
//                       │                 caller CAS at its deadline:
//                       │                 TAKEN(g, S) ──▶ ABANDONED(g, S) ──S CAS──▶ FREE(g+1)
//                       │                                  (S dead: the owner's allocator frees it)
//
// "Taken by the server" versus "given up by the caller" is the one CAS on
// PENDING(g): exactly one side wins, and the loser learns it from the value
// the CAS returns. A request whose slot no longer reads PENDING(g) is skipped
// by the server and counted by the FREE word's reason (kFreed*, below):
// `expired_skipped` (cancelled), `caller_gone` (its caller died), nothing
// when a server died running it (its caller got server_crashed; the ring
// counted `redelivered`). A reply CAS that finds ABANDONED counts `late_replies`; it can never
// reach another call, whose generation differs. Only the winner of TAKEN
// writes `reply` and `length`, and a slot is freed (so reusable) only once no
// server may still write it: an ABANDONED slot waits for its taker.
//
// Memory ordering: the caller writes `deadline_ns`, stores PENDING(g), then
// commits the request record (seq_cst CAS): a server that takes the record
// sees both. The server writes `reply` and `length`, then CASes REPLIED
// (seq_cst); the caller's acquire load of REPLIED sees them. Wake-up
// (Dekker): a parked caller increments `waiters` and re-loads `control` (both
// seq_cst) before it sleeps on `control`'s low half, which changes with every
// state; the server CASes, then loads `waiters` (seq_cst) and wakes if set.
//
// Crash (the process stops for ever between steps):
//   caller, after PENDING, before the record is committed: its process slot
//     is dead; whoever next owns that process slot recycles the call slot
//     (FREE(g+1)); no record names it.
//   caller, any time later: the server takes or skips the record as usual;
//     a reply to a dead caller is counted (`late_replies`, `caller_gone`),
//     and the next owner of the process slot recycles the call slot once no
//     live taker may still write it.
//   server, between its TAKEN CAS and the REPLIED CAS: the slot says TAKEN by
//     a dead process. The caller, re-checking its taker's liveness at least
//     every kParkRecheckInterval, CASes it to FREE(g+1) and returns
//     `server_crashed` (at most once: the record, redelivered to a sibling,
//     finds the slot no longer PENDING(g) and is skipped).
//   server, before its TAKEN CAS: the record is redelivered; the slot is
//     still PENDING(g), so a sibling takes the call normally.
//   server, after the REPLIED CAS, before its wake: the caller's bounded
//     park re-checks the slot; the reply is only delayed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "shmbus/layout/constants.hpp"
#include "shmbus/layout/blobs.hpp"

namespace shmbus::layout {

enum class CallState : std::uint8_t {
  free = 0,
  pending = 1,    // request sent; neither side has decided
  taken = 2,      // a server runs the handler; `who` = its process reference
  replied = 3,    // reply and length are written
  expired = 4,    // the server found the deadline passed and never ran it
  failed = 5,     // the server refused it; `who` = the Errc (bad_message, …)
  abandoned = 6,  // the caller gave up while the server ran it
  // 7..15 never written.
};

inline constexpr unsigned kCallStateBits = 4;
inline constexpr unsigned kCallWhoShift = 4;
inline constexpr unsigned kCallGenerationShift = 28;
inline constexpr std::uint64_t kCallWhoMask = (std::uint64_t{1} << 24) - 1;
inline constexpr std::uint64_t kCallGenerationMask = (std::uint64_t{1} << 36) - 1;

[[nodiscard]] constexpr std::uint64_t call_control(CallState s, std::uint32_t who,
                                                   std::uint64_t generation) noexcept {
  return ((generation & kCallGenerationMask) << kCallGenerationShift) |
         ((std::uint64_t{who} & kCallWhoMask) << kCallWhoShift) | static_cast<std::uint8_t>(s);
}
[[nodiscard]] constexpr CallState call_state(std::uint64_t c) noexcept {
  return static_cast<CallState>(c & 0xf);
}
[[nodiscard]] constexpr std::uint32_t call_who(std::uint64_t c) noexcept {
  return static_cast<std::uint32_t>((c >> kCallWhoShift) & kCallWhoMask);
}
[[nodiscard]] constexpr std::uint64_t call_generation(std::uint64_t c) noexcept {
  return (c >> kCallGenerationShift) & kCallGenerationMask;
}

// Why a slot was freed, kept in `who` of the FREE word, so a server that
// finds a request's slot gone can tell what happened without asking the
// kernel (until the slot is reused; a reused slot's caller is alive).
inline constexpr std::uint32_t kFreedNormally = 0;     // collected reply/outcome, or never sent
inline constexpr std::uint32_t kFreedCancelled = 1;    // the caller gave up before a server took it
inline constexpr std::uint32_t kFreedTakerDied = 2;    // its server died running it (server_crashed)
inline constexpr std::uint32_t kFreedCallerGone = 3;   // recycled after its caller died

// A request record's `correlation`: slot index (high 28 bits) | generation.
[[nodiscard]] constexpr std::uint64_t call_correlation(std::uint32_t index,
                                                       std::uint64_t generation) noexcept {
  return (std::uint64_t{index} << 36) | (generation & kCallGenerationMask);
}
[[nodiscard]] constexpr std::uint32_t correlation_index(std::uint64_t c) noexcept {
  return static_cast<std::uint32_t>(c >> 36);
}
[[nodiscard]] constexpr std::uint64_t correlation_generation(std::uint64_t c) noexcept {
  return c & kCallGenerationMask;
}

// A reply that is a loan (layout/blobs.hpp): the taker writes `reply_loan`,
// hands the block to this slot (its location names slot, index and call
// generation), sets kReplyLoan, then CASes TAKEN -> REPLIED; the block is held
// exactly while the slot says REPLIED with that generation.
enum ReplyFlags : std::uint8_t { kReplyLoan = 1u << 0 };

struct CallSlotHeader {
  std::uint64_t control;      // see above
  std::uint64_t deadline_ns;  // absolute CLOCK_MONOTONIC; written before PENDING
  std::uint32_t waiters;      // callers parked on control's low half
  std::uint32_t length;       // reply bytes, <= max_reply; written by the taker
  std::uint32_t service;      // registry index + 1 of the called service (for counting)
  std::uint8_t reply_flags;   // ReplyFlags; written by the taker before REPLIED
  std::uint8_t reserved[3];
  LoanRecord reply_loan;      // the reply's block when kReplyLoan
};

// One per process slot, at doorbells_offset (control.hpp). A process that
// waits for the replies of many calls at once (the readiness descriptor of
// an embedding event loop) parks on `seq`; a server that decides a call rings
// the caller's doorbell when `waiters` is non-zero (Dekker, as for `waiters`
// of a call slot).
struct ProcessDoorbell {
  std::uint32_t seq;
  std::uint32_t waiters;
  std::uint8_t reserved[56];
};

// Record types in a service mailbox (CellHeader::type).
enum class MessageKind : std::uint16_t { call = 1, cast = 2 };

inline constexpr std::uint32_t kMaxCallsPerProcess = 4096;
inline constexpr std::uint32_t kMaxReplyBytes = 1u << 20;

static_assert(std::is_trivially_copyable_v<CallSlotHeader>);
static_assert(std::is_standard_layout_v<CallSlotHeader>);
static_assert(sizeof(CallSlotHeader) == kCacheLine && alignof(CallSlotHeader) == 8);
static_assert(offsetof(CallSlotHeader, control) == 0);
static_assert(offsetof(CallSlotHeader, waiters) == 16);
static_assert(offsetof(CallSlotHeader, reply_flags) == 28 && offsetof(CallSlotHeader, reply_loan) == 32);
static_assert(std::is_trivially_copyable_v<ProcessDoorbell> && sizeof(ProcessDoorbell) == kCacheLine);
static_assert(kCallGenerationShift + 36 == 64 && kCallWhoShift + 24 == kCallGenerationShift);
static_assert(call_state(call_control(CallState::abandoned, 0xffffff, ~0ull)) ==
              CallState::abandoned);

}  // namespace shmbus::layout
