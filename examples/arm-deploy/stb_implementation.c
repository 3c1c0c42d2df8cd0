/* stb is header-only: the one translation unit that holds its code. On the
 * host qsim links Debian's libstb; a cross build has no such library. */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_write.h>
