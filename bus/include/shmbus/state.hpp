// state.hpp — placeholder: the state segment's API lands with issue 5.
#pragma once

namespace shmbus {

enum class StateAccess { read_only, read_write };

class State {
 private:
  State() = default;
};

}  // namespace shmbus
