# qsim_add_library(<name> LAYER <n> <sources...>
#                  [DEPENDS <tablegen targets...>]
#                  [LINK_LIBS [PUBLIC|PRIVATE] <libraries...>])
#
# Declares a qsim library in the style of MLIR's add_mlir_dialect_library:
# its generated-header dependencies and its link libraries are stated once,
# here. Every library also states its LAYER (docs/architecture.md): a qsim
# library may only link qsim libraries of a strictly lower layer, so the
# link graph cannot grow an arrow against the architecture; configuring
# fails otherwise. Libraries link no MLIR/LLVM themselves (executables pick
# shared or static MLIR, cmake/QSimLinking.cmake).
set_property(GLOBAL PROPERTY QSIM_LIBRARIES "")

function(qsim_add_library name)
  cmake_parse_arguments(ARG "" "LAYER" "DEPENDS;LINK_LIBS" ${ARGN})
  if(NOT DEFINED ARG_LAYER)
    message(FATAL_ERROR "qsim_add_library(${name}): LAYER is required")
  endif()
  add_library(${name} ${ARG_UNPARSED_ARGUMENTS})
  set_property(TARGET ${name} PROPERTY QSIM_LAYER ${ARG_LAYER})
  set_property(GLOBAL APPEND PROPERTY QSIM_LIBRARIES ${name})
  if(ARG_DEPENDS)
    add_dependencies(${name} ${ARG_DEPENDS})
  endif()
  if(ARG_LINK_LIBS)
    target_link_libraries(${name} ${ARG_LINK_LIBS})
  endif()
endfunction()

# Called once every library is declared: checks the layering.
function(qsim_check_layering)
  get_property(libs GLOBAL PROPERTY QSIM_LIBRARIES)
  foreach(lib ${libs})
    get_property(layer TARGET ${lib} PROPERTY QSIM_LAYER)
    get_property(deps TARGET ${lib} PROPERTY LINK_LIBRARIES)
    foreach(dep ${deps})
      if(dep IN_LIST libs)
        get_property(depLayer TARGET ${dep} PROPERTY QSIM_LAYER)
        if(NOT depLayer LESS layer)
          message(FATAL_ERROR "${lib} (layer ${layer}) links ${dep} (layer "
            "${depLayer}): a library may only link lower layers "
            "(docs/architecture.md)")
        endif()
      endif()
    endforeach()
  endforeach()
endfunction()
