# shmbus_flatc_generate(OUT_VAR OUTPUT_DIR schema.fbs...)
#
# Debian's FlatBuffers 2.0.8 ships no BuildFlatBuffers.cmake, so headers are generated
# with our own custom command running the packaged flatc. OUT_VAR receives the headers.
function(shmbus_flatc_generate out_var output_dir)
  set(headers)
  foreach(schema IN LISTS ARGN)
    get_filename_component(stem ${schema} NAME_WE)
    set(header ${output_dir}/${stem}_generated.h)
    add_custom_command(OUTPUT ${header}
      COMMAND flatbuffers::flatc --cpp --scoped-enums --gen-name-strings -o ${output_dir} ${schema}
      DEPENDS ${schema} flatbuffers::flatc
      COMMENT "flatc ${stem}.fbs"
      VERBATIM)
    list(APPEND headers ${header})
  endforeach()
  set(${out_var} ${headers} PARENT_SCOPE)
endfunction()
