// child_roles_crash.cpp — roles of shmbus_test_child for the crash tests.
#include "support/child_roles.hpp"

namespace shmbus::test {

int run_crash_role(const std::string& /*role*/, const ChildArgs& /*args*/) { return -1; }

}  // namespace shmbus::test
