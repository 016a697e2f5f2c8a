# SHMBUS_SANITIZE="address;undefined" or "thread" instruments every target of the build.
if(SHMBUS_SANITIZE)
  list(JOIN SHMBUS_SANITIZE "," shmbus_sanitizers)
  add_compile_options(-fsanitize=${shmbus_sanitizers} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${shmbus_sanitizers})
  message(STATUS "shmbus: sanitizers ${shmbus_sanitizers}")
endif()
