// shmbus.hpp — the whole public API of the shmbus library.
#pragma once

#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/error.hpp"
#include "shmbus/loan.hpp"
#include "shmbus/mailbox.hpp"
#include "shmbus/message.hpp"
#include "shmbus/readiness.hpp"
#include "shmbus/registry.hpp"
#include "shmbus/server.hpp"
#include "shmbus/span_allocator.hpp"
#include "shmbus/state.hpp"
#include "shmbus/supervisor.hpp"
#include "shmbus/wait.hpp"
