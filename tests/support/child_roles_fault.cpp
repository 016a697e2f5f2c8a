// Roles for tests/fault (kill -9 at named and random points).
#include "support/child_roles.hpp"

namespace shmbus::test {

int run_fault_role(const std::string& /*role*/, const ChildArgs& /*args*/) { return -1; }

}  // namespace shmbus::test
