// child_roles_calls.cpp — roles of shmbus_test_child for the calls tests.
#include "support/child_roles.hpp"

namespace shmbus::test {

int run_call_role(const std::string& /*role*/, const ChildArgs& /*args*/) { return -1; }

}  // namespace shmbus::test
