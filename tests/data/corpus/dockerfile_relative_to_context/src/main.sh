#!/bin/sh
echo relative
