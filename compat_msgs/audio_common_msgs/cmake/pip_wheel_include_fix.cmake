# The PyPI ROS 2 wheels export their *__rosidl_generator_py targets with the Python include
# directory of the machine that built the wheels (/opt/python/...). Point them at this
# machine's Python and NumPy headers. A system ROS 2 has no such path: nothing changes there.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development NumPy)
get_property(_imported DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(_target ${_imported})
  get_target_property(_includes ${_target} INTERFACE_INCLUDE_DIRECTORIES)
  if(_includes AND "${_includes}" MATCHES "/opt/python/")
    set_target_properties(${_target} PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${Python3_INCLUDE_DIRS};${Python3_NumPy_INCLUDE_DIRS}")
  endif()
endforeach()
