#!/bin/sh
echo profiled
