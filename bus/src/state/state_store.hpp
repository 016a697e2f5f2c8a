#pragma once
namespace shmbus::detail { class StateStore {}; }
