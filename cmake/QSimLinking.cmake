# How qsim executables link MLIR and LLVM.
#
# Debian ships MLIR/LLVM both as two large shared libraries (libMLIR.so,
# libLLVM.so) and as static component libraries. The shared ones cost ~65 MB
# of resident memory before a model is loaded (relocations and static
# initialisers of all of LLVM), which the runtime tool qsim-run cannot
# afford on small machines; it links the static components it actually uses.
# The compiler tools and tests use the shared libraries (fast links).
#
# qsim's own libraries link neither: every executable picks one with
# qsim_link_mlir(<target> SHARED|STATIC <mlir components...>).

# LLVMSupport's link interface names zstd's CMake target, which Debian's
# runtime package does not provide; point it at the library itself.
if(NOT TARGET zstd::libzstd_shared)
  find_library(QSIM_ZSTD_LIBRARY NAMES zstd libzstd.so.1 REQUIRED)
  add_library(zstd::libzstd_shared SHARED IMPORTED GLOBAL)
  set_target_properties(zstd::libzstd_shared PROPERTIES
    IMPORTED_LOCATION ${QSIM_ZSTD_LIBRARY})
endif()
if(NOT TARGET ZLIB::ZLIB)
  find_package(ZLIB REQUIRED)
endif()

add_library(qsim-mlir-shared INTERFACE)
target_link_libraries(qsim-mlir-shared INTERFACE MLIR LLVM)

# Transitive closure of the static MLIR libraries `libs`, with the LLVM
# dylib replaced by the static LLVM components MLIR needs.
function(qsim_static_mlir_closure out)
  set(result "")
  set(queue ${ARGN})
  while(queue)
    list(POP_FRONT queue lib)
    if(lib STREQUAL "LLVM")
      set(lib LLVMSupport)
    endif()
    if(lib IN_LIST result)
      continue()
    endif()
    list(APPEND result ${lib})
    if(TARGET ${lib})
      get_target_property(deps ${lib} INTERFACE_LINK_LIBRARIES)
      if(deps)
        list(APPEND queue ${deps})
      endif()
    endif()
  endwhile()
  set(${out} ${result} PARENT_SCOPE)
endfunction()

function(qsim_link_mlir target kind)
  if(kind STREQUAL "SHARED")
    target_link_libraries(${target} PRIVATE qsim-mlir-shared)
  else()
    # The target's own (qsim) libraries go into the group too: CMake places
    # their transitive dependencies after the target's direct ones, i.e.
    # after the group, where nothing would resolve their MLIR symbols.
    get_target_property(own ${target} LINK_LIBRARIES)
    if(NOT own)
      set(own "")
    endif()
    qsim_static_mlir_closure(libs ${own} ${ARGN})
    # Static archives reference each other in cycles: one link group.
    target_link_libraries(${target} PRIVATE -Wl,--start-group ${libs}
      -Wl,--end-group)
    target_link_options(${target} PRIVATE -Wl,--gc-sections)
  endif()
endfunction()
