#include "errors.h"

#include <uv.h>

const char *halo_strerror(int code) {
  switch (code) {
#define X(name, text) case HALO_E##name: return text;
    HALO_ERRNO_MAP(X)
#undef X
  default: return code < 0 && code > -4096 ? uv_strerror(code) : "unknown error";
  }
}

const char *halo_err_name(int code) {
  switch (code) {
#define X(name, text) case HALO_E##name: return "E" #name;
    HALO_ERRNO_MAP(X)
#undef X
  default: return code < 0 && code > -4096 ? uv_err_name(code) : "EUNKNOWN";
  }
}
