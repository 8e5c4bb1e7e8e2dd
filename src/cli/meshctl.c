#include <stdio.h>
int main(void)
{
    puts("meshctl: under construction");
    return 0;
}
