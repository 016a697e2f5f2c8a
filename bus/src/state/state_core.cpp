#include "bus/bus_core.hpp"
#include "state/state_store.hpp"
namespace shmbus::detail {
Result<StateStore*> BusCore::state_store(bool) { return fail(Errc::system_error, "placeholder"); }
}
