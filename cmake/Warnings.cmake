# shmbus_warnings(target): the warning set every shmbus target builds with.
function(shmbus_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor
    -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wpedantic)
  if(SHMBUS_WERROR)
    # g++ 12 at -O2/-O3 reports false -Wrestrict on std::string concatenation
    # inside libstdc++ (GCC bug 105329): a warning there, never an error.
    target_compile_options(${target} PRIVATE -Werror -Wno-error=restrict)
  endif()
endfunction()
