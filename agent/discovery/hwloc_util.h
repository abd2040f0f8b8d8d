// SPDX-License-Identifier: Apache-2.0
#pragma once

// Private to the discovery module: small readers of hwloc objects.

#include <hwloc.h>

#include <string>

namespace portolan::discovery {

// The first NUMA node of `nodeset`, -1 when it is empty or null.
inline int FirstNuma(hwloc_const_nodeset_t nodeset) {
  if (nodeset == nullptr || hwloc_bitmap_iszero(nodeset)) return -1;
  return hwloc_bitmap_first(nodeset);
}

// An info attribute of `obj` ("" when it has none).
inline std::string Info(hwloc_obj_t obj, const char* name) {
  const char* v = hwloc_obj_get_info_by_name(obj, name);
  return v ? v : "";
}

}  // namespace portolan::discovery
