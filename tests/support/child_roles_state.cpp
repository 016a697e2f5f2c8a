#include "support/child_roles.hpp"
namespace shmbus::test { int run_state_role(const std::string&, const ChildArgs&) { return -1; } }
