# Injected by interfaces/build.sh with -DCMAKE_PROJECT_INCLUDE=<this file>.
#
# The PyPI message wheels (std_msgs, geometry_msgs, builtin_interfaces, ...) export their
# <pkg>::<pkg>__rosidl_generator_py targets with the wheel build machine's Python and numpy
# include folders (/opt/python/cp311-cp311/...), which do not exist here, and CMake refuses to
# generate with a missing imported include folder. Instead of editing the files pip installed,
# this replaces the missing folders of those targets, in this build only, by the include folders
# of the venv's Python and numpy. It runs at the end of the top-level CMakeLists.txt, when every
# dependency's targets have been imported.
function(venv_python_paths_fix)
  find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
  get_property(imported DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  set(fixed 0)
  foreach(target IN LISTS imported)
    if(NOT target MATCHES "__rosidl_generator_py$")
      continue()
    endif()
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs)
      continue()
    endif()
    set(kept "")
    set(missing FALSE)
    foreach(dir IN LISTS dirs)
      if(EXISTS "${dir}")
        list(APPEND kept "${dir}")
      else()
        set(missing TRUE)
      endif()
    endforeach()
    if(missing)
      list(APPEND kept ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
      list(REMOVE_DUPLICATES kept)
      set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${kept}")
      math(EXPR fixed "${fixed} + 1")
    endif()
  endforeach()
  message(STATUS "venv Python include folders set on ${fixed} imported generator_py targets: "
    "${Python3_INCLUDE_DIRS};${Python3_NumPy_INCLUDE_DIRS}")
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL venv_python_paths_fix)
